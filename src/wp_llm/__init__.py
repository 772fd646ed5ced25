"""WP LLM webhooks: the API client, the receiver toolkit and the self-hosted service.

    from wp_llm import Client

    client = Client()  # reads WP_LLM_API_KEY and WP_LLM_BASE_URL
    webhook = client.webhooks.create(url="https://example.com/hooks", events=["generation.*"])

Errors live in `wp_llm.exceptions`, the receiver toolkit in `wp_llm.webhooks`.
"""

from wp_llm import exceptions
from wp_llm._client import (
    APIObject,
    AsyncClient,
    AsyncPage,
    AsyncPaginator,
    Attempt,
    Client,
    DeletedWebhook,
    Delivery,
    DeliveryStats,
    DeliveryStatus,
    Event,
    EventType,
    Page,
    ReplayStatus,
    StatsBucket,
    Webhook,
    WebhookReplayResult,
    WebhookTestResult,
)
from wp_llm._version import __version__
from wp_llm.exceptions import (
    APIError,
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    NotFoundError,
    QuotaError,
    RateLimitError,
    ServerError,
    ValidationError,
    WPLLMError,
)

__all__ = [
    "APIError",
    "APIObject",
    "AsyncClient",
    "AsyncPage",
    "AsyncPaginator",
    "Attempt",
    "AuthenticationError",
    "AuthorizationError",
    "Client",
    "ConflictError",
    "DeletedWebhook",
    "Delivery",
    "DeliveryStats",
    "DeliveryStatus",
    "Event",
    "EventType",
    "NotFoundError",
    "Page",
    "QuotaError",
    "RateLimitError",
    "ReplayStatus",
    "ServerError",
    "StatsBucket",
    "ValidationError",
    "WPLLMError",
    "Webhook",
    "WebhookReplayResult",
    "WebhookTestResult",
    "__version__",
    "exceptions",
]
