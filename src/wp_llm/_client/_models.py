"""Typed objects of the API.

Fields the service adds later are kept (`model_extra`), so an older client keeps working
and `model_dump()` returns everything the service sent.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DeliveryStatus = Literal["pending", "succeeded", "failed", "cancelled"]
ReplayStatus = Literal["pending", "succeeded", "failed"]


class APIObject(BaseModel):
    """Base of every object the API returns."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    def to_dict(self) -> dict[str, Any]:
        """Return the object as the API's JSON fields, unknown ones included."""
        return self.model_dump(mode="json", by_alias=True)


class Webhook(APIObject):
    """An endpoint that receives deliveries of the event types it subscribes to."""

    id: str
    object: Literal["webhook"] = "webhook"
    url: str
    description: str | None = None
    events: list[str]
    enabled: bool
    status: str
    disabled_reason: str | None = None
    disabled_at: int | None = None
    created: int
    updated: int
    # Delivery settings of this endpoint; None means the service's default.
    rate_limit: float | None = None
    max_concurrency: int | None = None
    timeout: float | None = None
    retry_schedule: list[float] | None = None
    # Endpoint health, kept up to date by the delivery engine.
    circuit_state: str | None = None
    consecutive_failures: int | None = None
    failing_since: int | None = None
    next_probe_at: int | None = None
    paused_until: int | None = None
    # Set only in the responses to create and to secret rotation.
    secret: str | None = None
    standard_webhooks_secret: str | None = None
    # Set only by secret rotation: when the replaced secrets stop signing, in Unix seconds.
    previous_secrets_expire_at: int | None = None


class DeletedWebhook(APIObject):
    """The response to deleting a webhook."""

    id: str
    object: Literal["webhook"] = "webhook"
    deleted: bool


class Event(APIObject):
    """An event envelope, exactly as deliveries carry it."""

    id: str
    object: Literal["event"] = "event"
    created: int
    type: str
    data: dict[str, Any]


class Attempt(APIObject):
    """One try to deliver an event to an endpoint."""

    id: str
    object: Literal["attempt"] = "attempt"
    attempted_at: int
    outcome: str
    status_code: int | None = None
    latency_ms: int
    error: str | None = None
    response_body: str | None = None
    response_truncated: bool = False


class Delivery(APIObject):
    """An event on its way to one endpoint; `attempts` is set only by `retrieve`."""

    id: str
    object: Literal["delivery"] = "delivery"
    event_id: str
    webhook_id: str
    event_type: str
    # One of DeliveryStatus today; kept a plain string so a new status does not break old clients.
    status: str
    attempt_count: int
    next_attempt_at: int | None = None
    last_attempt_at: int | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    created: int
    attempts: list[Attempt] | None = None


class WebhookTestResult(APIObject):
    """The outcome of sending one test event to a webhook, synchronously."""

    object: Literal["webhook_test"] = "webhook_test"
    webhook_id: str | None = None
    success: bool
    status_code: int | None = None
    latency_ms: int | None = None
    response_body: str | None = None
    response_truncated: bool = False
    error: str | None = None
    event: Event


class WebhookReplayResult(APIObject):
    """The outcome of a replay: how many deliveries were queued again, or would be."""

    object: Literal["webhook_replay"] = "webhook_replay"
    webhook_id: str
    dry_run: bool
    count: int


class StatsBucket(APIObject):
    """Attempts of one hour; `start` is the hour's first second, latencies in milliseconds."""

    start: int
    succeeded: int
    failed: int
    p50_ms: int | None = None
    p95_ms: int | None = None


class DeliveryStats(APIObject):
    """Delivery attempts of the account's last hours: success rate, latency, hourly buckets."""

    object: Literal["delivery_stats"] = "delivery_stats"
    window_hours: int
    pending: int
    attempts: int
    success_rate: float | None = None
    p50_ms: int | None = None
    p95_ms: int | None = None
    truncated: bool = False
    buckets: list[StatsBucket] = Field(default_factory=list)


class EventType(APIObject):
    """A catalog entry: the JSON Schema of the type's `data` and an example of it."""

    object: Literal["event_type"] = "event_type"
    type: str
    description: str = ""
    # `schema` would shadow a BaseModel method, so the attribute takes another name.
    json_schema: dict[str, Any] = Field(default_factory=dict, alias="schema")
    example: dict[str, Any] = Field(default_factory=dict)
