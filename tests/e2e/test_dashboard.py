"""The dashboard page and the statistics it draws."""

from __future__ import annotations

import httpx

from tests.conftest import Account
from tests.e2e.helpers import create_webhook, publish, wait_for_delivery
from tests.support.receiver import Receiver, Reply


def test_stats_count_attempts_by_outcome(account: Account, receiver: Receiver) -> None:
    receiver.reply_with(Reply(500))
    create_webhook(account.client, receiver.url)
    first = publish(account.client, "generation.completed")
    wait_for_delivery(account.client, first["id"])
    second = publish(account.client, "analysis.completed")
    wait_for_delivery(account.client, second["id"])

    stats = account.client.get("/v1/stats", params={"hours": 3}).json()
    assert stats["attempts"] == 3
    assert stats["success_rate"] == 2 / 3
    assert stats["pending"] == 0
    assert len(stats["buckets"]) == 3
    assert sum(b["succeeded"] for b in stats["buckets"]) == 2
    assert sum(b["failed"] for b in stats["buckets"]) == 1
    assert stats["p50_ms"] is not None


def test_stats_reject_a_window_beyond_a_week(account: Account) -> None:
    response = account.client.get("/v1/stats", params={"hours": 1000})
    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "hours"


def test_dashboard_page_is_served_with_a_strict_policy(account: Account) -> None:
    with httpx.Client(base_url=account.service.base_url) as anonymous:
        page = anonymous.get("/dashboard")
        script = anonymous.get("/dashboard/app.js")
    assert page.status_code == 200
    assert "API key" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert script.headers["content-type"].startswith("text/javascript")
    assert "/v1/stats" in script.text
