"""Django view for a `WebhookReceiver`.

    urlpatterns = [path("webhooks/wp-llm", create_view(receiver))]

Django is imported when `create_view` runs, so `wp_llm.webhooks` works without it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from wp_llm.webhooks._receiver import WebhookReceiver

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

__all__ = ["create_view"]


def create_view(receiver: WebhookReceiver) -> Callable[[HttpRequest], HttpResponse]:
    """Create a Django view that passes each request's raw body and headers to `receiver`.

    The view accepts only POST and is exempt from CSRF checks, since the signature
    authenticates the sender. Handlers run synchronously in the request.
    """
    try:
        from django.http import HttpResponse
        from django.views.decorators.csrf import csrf_exempt
        from django.views.decorators.http import require_POST
    except ImportError:
        raise ImportError("wp_llm.webhooks.django needs Django; install wp-llm[django]") from None

    @csrf_exempt
    @require_POST
    def wp_llm_webhook(request: HttpRequest) -> HttpResponse:
        # request.body is the bytes as received; request.POST would parse them.
        result = receiver.handle(request.body, request.headers)
        return HttpResponse(
            result.json_bytes(), status=result.status_code, content_type="application/json"
        )

    return wp_llm_webhook
