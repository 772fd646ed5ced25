"""The API's resources as methods of the synchronous `Client`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from wp_llm._client._base import (
    OMIT,
    APIRequest,
    batch_item,
    drop_none,
    drop_omitted,
    object_path,
    post,
)
from wp_llm._client._models import (
    DeletedWebhook,
    Delivery,
    DeliveryStats,
    DeliveryStatus,
    Event,
    EventType,
    ReplayStatus,
    Webhook,
    WebhookReplayResult,
    WebhookTestResult,
)
from wp_llm._client._pagination import Listing, Page

if TYPE_CHECKING:
    from wp_llm._client._client import Client

WEBHOOKS = "/v1/webhooks"
EVENTS = "/v1/events"
EVENT_BATCH = "/v1/events/batch"
DELIVERIES = "/v1/deliveries"
EVENT_TYPES = "/v1/event_types"
STATS = "/v1/stats"


def as_list(name: str, values: Any) -> Any:
    """Turn a sequence argument into a JSON list; None and OMIT pass unchanged."""
    if isinstance(values, str):
        raise TypeError(f"{name} must be a list, got the string {values[:100]!r}")
    return list(values) if isinstance(values, Sequence) else values


class _Resource:
    def __init__(self, client: Client) -> None:
        self._client = client


class Webhooks(_Resource):
    """`/v1/webhooks`: the endpoints that receive deliveries."""

    def create(
        self,
        *,
        url: str,
        events: Sequence[str],
        description: str | None = None,
        secret: str | None = None,
        enabled: bool | None = None,
        rate_limit: float | None = None,
        max_concurrency: int | None = None,
        timeout: float | None = None,
        retry_schedule: Sequence[float] | None = None,
        idempotency_key: str | None = None,
    ) -> Webhook:
        """Register an endpoint; the response contains its signing secret, shown only this once.

        `rate_limit` (deliveries per second), `max_concurrency`, `timeout` (seconds per
        attempt) and `retry_schedule` (seconds before each retry) default to the service's.
        """
        body = drop_none(
            url=url,
            events=as_list("events", events),
            description=description,
            secret=secret,
            enabled=enabled,
            rate_limit=rate_limit,
            max_concurrency=max_concurrency,
            timeout=timeout,
            retry_schedule=as_list("retry_schedule", retry_schedule),
        )
        return self._client._model(post(WEBHOOKS, body, idempotency_key), Webhook)

    def list(
        self,
        *,
        limit: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
    ) -> Page[Webhook]:
        """List webhooks, newest first."""
        params = drop_none(limit=limit, starting_after=starting_after, ending_before=ending_before)
        return self._client._page(Listing(WEBHOOKS, Webhook, params))

    def retrieve(self, webhook_id: str) -> Webhook:
        return self._client._model(APIRequest("GET", object_path(WEBHOOKS, webhook_id)), Webhook)

    def update(
        self,
        webhook_id: str,
        *,
        url: str = OMIT,
        events: Sequence[str] = OMIT,
        description: str | None = OMIT,
        enabled: bool = OMIT,
        rate_limit: float | None = OMIT,
        max_concurrency: int | None = OMIT,
        timeout: float | None = OMIT,
        retry_schedule: Sequence[float] | None = OMIT,
    ) -> Webhook:
        """Change the arguments passed; None clears the description or restores a default."""
        body = drop_omitted(
            url=url,
            events=as_list("events", events),
            description=description,
            enabled=enabled,
            rate_limit=rate_limit,
            max_concurrency=max_concurrency,
            timeout=timeout,
            retry_schedule=as_list("retry_schedule", retry_schedule),
        )
        request = APIRequest("PATCH", object_path(WEBHOOKS, webhook_id), body=body)
        return self._client._model(request, Webhook)

    def delete(self, webhook_id: str) -> DeletedWebhook:
        """Delete the webhook and cancel its pending deliveries."""
        request = APIRequest("DELETE", object_path(WEBHOOKS, webhook_id))
        return self._client._model(request, DeletedWebhook)

    def test(
        self,
        webhook_id: str,
        *,
        type: str | None = None,  # noqa: A002 - the API's field name
        data: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> WebhookTestResult:
        """Send one signed test event now and return the endpoint's response."""
        body = drop_none(type=type, data=dict(data) if data is not None else None)
        request = post(object_path(WEBHOOKS, webhook_id, "test"), body, idempotency_key)
        return self._client._model(request, WebhookTestResult)

    def rotate_secret(
        self,
        webhook_id: str,
        *,
        secret: str | None = None,
        grace_period: float | None = None,
        idempotency_key: str | None = None,
    ) -> Webhook:
        """Sign with a new secret from now on; the response contains it, shown only this once.

        The replaced secrets keep signing too for `grace_period` seconds (the service's
        default is 24 hours), so receivers can switch without rejecting deliveries.
        """
        body = drop_none(secret=secret, grace_period=grace_period)
        request = post(object_path(WEBHOOKS, webhook_id, "rotate_secret"), body, idempotency_key)
        return self._client._model(request, Webhook)

    def replay(
        self,
        webhook_id: str,
        *,
        since: int,
        until: int | None = None,
        event_types: Sequence[str] | None = None,
        status: Sequence[ReplayStatus] | None = None,
        dry_run: bool | None = None,
        idempotency_key: str | None = None,
    ) -> WebhookReplayResult:
        """Queue the webhook's past deliveries again: those created from `since` to `until`.

        Times are Unix seconds. `status` defaults to failed deliveries only, and
        `dry_run=True` counts the matching deliveries without queueing them.
        """
        body = drop_none(
            since=since,
            until=until,
            event_types=as_list("event_types", event_types),
            status=as_list("status", status),
            dry_run=dry_run,
        )
        request = post(object_path(WEBHOOKS, webhook_id, "replay"), body, idempotency_key)
        return self._client._model(request, WebhookReplayResult)


class Events(_Resource):
    """`/v1/events`: publish events and read published ones."""

    def create(
        self,
        *,
        type: str,  # noqa: A002 - the API's field name
        data: Mapping[str, Any],
        account: str | None = None,
        idempotency_key: str | None = None,
    ) -> Event:
        """Publish an event to every webhook of the account that subscribes to its type."""
        body = drop_none(type=type, data=dict(data), account=account)
        return self._client._model(post(EVENTS, body, idempotency_key), Event)

    def create_batch(
        self,
        events: Sequence[Mapping[str, Any]],
        *,
        account: str | None = None,
        idempotency_key: str | None = None,
    ) -> list[Event]:
        """Publish up to 100 events in one request: all of them are stored, or none.

        Each item is a mapping with `type` and `data`. The events come back in the same
        order; each counts against the account's quota, the request once against the
        rate limit.
        """
        body = drop_none(events=[batch_item(item) for item in events], account=account)
        return self._client._models(post(EVENT_BATCH, body, idempotency_key), Event)

    def list(
        self,
        *,
        type: str | None = None,  # noqa: A002 - the API's parameter name
        limit: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
    ) -> Page[Event]:
        """List events, newest first; `type` takes a catalog type, `generation.*` or `*`."""
        params = drop_none(
            type=type, limit=limit, starting_after=starting_after, ending_before=ending_before
        )
        return self._client._page(Listing(EVENTS, Event, params))

    def retrieve(self, event_id: str) -> Event:
        return self._client._model(APIRequest("GET", object_path(EVENTS, event_id)), Event)


class Deliveries(_Resource):
    """`/v1/deliveries`: the delivery log, and redelivery."""

    def list(
        self,
        *,
        webhook_id: str | None = None,
        event_id: str | None = None,
        status: DeliveryStatus | None = None,
        limit: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
    ) -> Page[Delivery]:
        """List deliveries, newest first, optionally of one webhook, one event or one status."""
        params = drop_none(
            webhook_id=webhook_id,
            event_id=event_id,
            status=status,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
        )
        return self._client._page(Listing(DELIVERIES, Delivery, params))

    def retrieve(self, delivery_id: str) -> Delivery:
        """Return the delivery with its attempts."""
        request = APIRequest("GET", object_path(DELIVERIES, delivery_id))
        return self._client._model(request, Delivery)

    def retry(self, delivery_id: str, *, idempotency_key: str | None = None) -> Delivery:
        """Make the delivery due now; a finished one gets one more attempt."""
        request = post(object_path(DELIVERIES, delivery_id, "retry"), None, idempotency_key)
        return self._client._model(request, Delivery)


class EventTypes(_Resource):
    """`/v1/event_types`: the catalog of event types."""

    def list(self) -> Page[EventType]:
        return self._client._page(Listing(EVENT_TYPES, EventType))


class Stats(_Resource):
    """`/v1/stats`: delivery success rate and latency of the account."""

    def retrieve(self, *, hours: int | None = None) -> DeliveryStats:
        """Summarize the attempts of the last `hours` hours (the service's default is 24)."""
        request = APIRequest("GET", STATS, params=drop_none(hours=hours))
        return self._client._model(request, DeliveryStats)
