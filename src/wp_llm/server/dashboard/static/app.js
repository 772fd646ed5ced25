// Dashboard: reads the API with the key the user enters; the key stays in sessionStorage.
"use strict";

const KEY_STORAGE = "wp-llm-api-key";
const PAGE_SIZE = 25;
const REFRESH_MS = 10000;
let lastDeliveryId = null;

function apiKey() { return sessionStorage.getItem(KEY_STORAGE); }

async function api(method, path) {
  const response = await fetch(path, { method, headers: { Authorization: `Bearer ${apiKey()}` } });
  const body = await response.json();
  if (!response.ok) {
    const error = body.error || {};
    throw new Error(`${method} ${path}: ${error.message || response.status}`);
  }
  return body;
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text === null || text === undefined ? "–" : String(text);
  if (className) td.className = className;
  return td;
}

function button(row, label, onClick) {
  const td = row.insertCell();
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = label;
  element.addEventListener("click", onClick);
  td.appendChild(element);
}

function time(seconds) { return seconds ? new Date(seconds * 1000).toLocaleString() : null; }

function showMessage(text) { document.getElementById("message").textContent = text || ""; }

function svgElement(name, attributes) {
  const element = document.createElementNS("http://www.w3.org/2000/svg", name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  return element;
}

function drawAttempts(buckets) {
  const svg = document.getElementById("chart-attempts");
  svg.replaceChildren();
  const peak = Math.max(1, ...buckets.map((b) => b.succeeded + b.failed));
  const width = 720 / buckets.length;
  buckets.forEach((bucket, index) => {
    const okHeight = (bucket.succeeded / peak) * 140;
    const badHeight = (bucket.failed / peak) * 140;
    const x = index * width + 1;
    svg.appendChild(svgElement("rect", { x, y: 150 - okHeight, width: width - 2, height: okHeight, class: "ok" }));
    svg.appendChild(svgElement("rect", { x, y: 150 - okHeight - badHeight, width: width - 2, height: badHeight, class: "bad" }));
  });
  const label = svgElement("text", { x: 4, y: 12 });
  label.textContent = `max ${peak} per hour (green: succeeded, red: failed)`;
  svg.appendChild(label);
}

function drawLatency(buckets) {
  const svg = document.getElementById("chart-latency");
  svg.replaceChildren();
  const peak = Math.max(1, ...buckets.map((b) => b.p95_ms || 0));
  const width = 720 / buckets.length;
  for (const [field, className] of [["p50_ms", "p50"], ["p95_ms", "p95"]]) {
    const points = buckets
      .map((b, i) => (b[field] === null ? null : [i * width + width / 2, 150 - (b[field] / peak) * 140]))
      .filter(Boolean);
    if (points.length > 1) {
      svg.appendChild(svgElement("polyline", { points: points.map((p) => p.join(",")).join(" "), class: className }));
    }
    for (const [x, y] of points) svg.appendChild(svgElement("circle", { cx: x, cy: y, r: 3, class: `${className}-dot` }));
  }
  const label = svgElement("text", { x: 4, y: 12 });
  label.textContent = `max ${peak} ms (blue: p50, orange: p95)`;
  svg.appendChild(label);
}

async function loadStats() {
  const stats = await api("GET", "/v1/stats?hours=24");
  const rate = stats.success_rate === null ? "–" : `${(stats.success_rate * 100).toFixed(1)}%`;
  document.getElementById("stat-success").textContent = rate;
  document.getElementById("stat-attempts").textContent = stats.attempts;
  document.getElementById("stat-latency").textContent = stats.p50_ms === null ? "–" : `${stats.p50_ms} / ${stats.p95_ms} ms`;
  document.getElementById("stat-pending").textContent = stats.pending;
  drawAttempts(stats.buckets);
  drawLatency(stats.buckets);
}

async function loadWebhooks() {
  const list = await api("GET", "/v1/webhooks?limit=100");
  const body = document.querySelector("#webhooks tbody");
  body.replaceChildren();
  for (const webhook of list.data) {
    const row = body.insertRow();
    cell(row, webhook.url, "url");
    cell(row, webhook.events.join(", "));
    cell(row, webhook.disabled_reason ? `${webhook.status}: ${webhook.disabled_reason}` : webhook.status, `status-${webhook.status}`);
    cell(row, time(webhook.created));
    button(row, "Send test", () => run(async () => {
      const result = await api("POST", `/v1/webhooks/${webhook.id}/test`);
      showMessage(result.success ? "" : `Test failed: ${result.error}`);
      if (result.success) alert(`Test delivered: HTTP ${result.status_code} in ${result.latency_ms} ms`);
    }));
  }
}

async function loadDeliveries(append) {
  const status = document.getElementById("status-filter").value;
  let path = `/v1/deliveries?limit=${PAGE_SIZE}`;
  if (status) path += `&status=${encodeURIComponent(status)}`;
  if (append && lastDeliveryId) path += `&starting_after=${encodeURIComponent(lastDeliveryId)}`;
  const list = await api("GET", path);
  const body = document.querySelector("#deliveries tbody");
  if (!append) body.replaceChildren();
  for (const delivery of list.data) {
    const row = body.insertRow();
    const idCell = cell(row, delivery.id);
    idCell.style.cursor = "pointer";
    idCell.addEventListener("click", () => run(() => showAttempts(delivery.id)));
    cell(row, `${delivery.event_type} ${delivery.event_id}`);
    cell(row, delivery.webhook_id);
    cell(row, delivery.status, `status-${delivery.status}`);
    cell(row, delivery.attempt_count);
    cell(row, delivery.last_status_code);
    button(row, "Resend", () => run(async () => { await api("POST", `/v1/deliveries/${delivery.id}/retry`); await refresh(); }));
  }
  lastDeliveryId = list.data.length ? list.data[list.data.length - 1].id : lastDeliveryId;
  document.getElementById("more-deliveries").hidden = !list.has_more;
}

async function showAttempts(deliveryId) {
  const delivery = await api("GET", `/v1/deliveries/${deliveryId}`);
  document.getElementById("attempts-title").textContent = deliveryId;
  const body = document.querySelector("#attempts tbody");
  body.replaceChildren();
  for (const attempt of delivery.attempts) {
    const row = body.insertRow();
    cell(row, time(attempt.attempted_at));
    cell(row, attempt.outcome, `status-${attempt.outcome}`);
    cell(row, attempt.status_code);
    cell(row, `${attempt.latency_ms} ms`);
    cell(row, attempt.error);
    const pre = document.createElement("pre");
    pre.textContent = attempt.response_body || "";
    row.insertCell().appendChild(pre);
  }
  document.getElementById("attempts-panel").hidden = false;
}

async function run(action) {
  try { await action(); } catch (error) { showMessage(error.message); }
}

async function refresh() {
  await Promise.all([loadStats(), loadWebhooks(), loadDeliveries(false)]);
}

function connected(isConnected) {
  document.getElementById("content").hidden = !isConnected;
  document.getElementById("disconnect").hidden = !isConnected;
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORAGE, document.getElementById("api-key").value.trim());
    run(async () => { await refresh(); connected(true); showMessage(""); });
  });
  document.getElementById("disconnect").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    connected(false);
  });
  document.getElementById("status-filter").addEventListener("change", () => run(() => loadDeliveries(false)));
  document.getElementById("more-deliveries").addEventListener("click", () => run(() => loadDeliveries(true)));
  if (apiKey()) run(async () => { await refresh(); connected(true); });
  setInterval(() => { if (apiKey()) run(refresh); }, REFRESH_MS);
});
