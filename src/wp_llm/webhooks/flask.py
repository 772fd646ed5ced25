"""Flask view for a `WebhookReceiver`.

    app.add_url_rule("/webhooks/wp-llm", view_func=create_view(receiver), methods=["POST"])

Flask is imported when `create_view` runs, so `wp_llm.webhooks` works without it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from wp_llm.webhooks._receiver import WebhookReceiver

if TYPE_CHECKING:
    from flask import Response

__all__ = ["create_view"]


def create_view(receiver: WebhookReceiver) -> Callable[[], Response]:
    """Create a Flask view that passes each request's raw body and headers to `receiver`.

    Handlers run synchronously in the request. Exempt the view from CSRF protection
    (Flask-WTF: `csrf.exempt(view)`), since the signature authenticates the sender.
    """
    try:
        from flask import Response, request
    except ImportError:
        raise ImportError("wp_llm.webhooks.flask needs Flask; install wp-llm[flask]") from None

    def wp_llm_webhook() -> Response:
        # get_data() returns the bytes as received; request.json would parse them.
        result = receiver.handle(request.get_data(), request.headers)
        return Response(result.json_bytes(), status=result.status_code, mimetype="application/json")

    return wp_llm_webhook
