"""The API client; `wp_llm` re-exports what callers need from here."""

from wp_llm._client._async_resources import (
    AsyncDeliveries,
    AsyncEvents,
    AsyncEventTypes,
    AsyncStats,
    AsyncWebhooks,
)
from wp_llm._client._client import AsyncClient, Client
from wp_llm._client._config import (
    DEFAULT_BASE_URL,
    DEFAULT_CONNECT_TIMEOUT_SECONDS,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT_SECONDS,
)
from wp_llm._client._models import (
    APIObject,
    Attempt,
    DeletedWebhook,
    Delivery,
    DeliveryStats,
    DeliveryStatus,
    Event,
    EventType,
    ReplayStatus,
    StatsBucket,
    Webhook,
    WebhookReplayResult,
    WebhookTestResult,
)
from wp_llm._client._pagination import AsyncPage, AsyncPaginator, Page
from wp_llm._client._resources import Deliveries, Events, EventTypes, Stats, Webhooks

__all__ = [
    "APIObject",
    "AsyncClient",
    "AsyncDeliveries",
    "AsyncEventTypes",
    "AsyncEvents",
    "AsyncPage",
    "AsyncPaginator",
    "AsyncStats",
    "AsyncWebhooks",
    "Attempt",
    "Client",
    "DEFAULT_BASE_URL",
    "DEFAULT_CONNECT_TIMEOUT_SECONDS",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT_SECONDS",
    "DeletedWebhook",
    "Deliveries",
    "Delivery",
    "DeliveryStats",
    "DeliveryStatus",
    "Event",
    "EventType",
    "EventTypes",
    "Events",
    "Page",
    "ReplayStatus",
    "Stats",
    "StatsBucket",
    "Webhook",
    "WebhookReplayResult",
    "WebhookTestResult",
    "Webhooks",
]
