"""`WebhookReceiver`: verify, deduplicate and dispatch deliveries, framework-neutral.

The framework helpers turn a request into `handle` or `handle_async` calls and send
back the returned `ReceiverResponse`. Status codes follow what the service does with
them: any 2xx ends the delivery, anything else makes the service retry it later.

| outcome                                      | status |
|----------------------------------------------|--------|
| handled, or no handler for the type          | 200    |
| duplicate of an event already handled        | 200    |
| duplicate of an event still being handled    | 409    |
| missing header, malformed header, bad body   | 400    |
| bad signature or timestamp                   | 401    |
| a handler raised                             | 500    |
| the deduplicator failed                      | 503    |
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, TypeVar

from wp_llm.webhooks._deduplication import Deduplicator
from wp_llm.webhooks._handlers import Handler, HandlerRegistry, validate_pattern
from wp_llm.webhooks._headers import HeadersInput, RequestHeaders
from wp_llm.webhooks._payload import BodyInput
from wp_llm.webhooks._signature_headers import DELIVERY_ID_HEADER, quote
from wp_llm.webhooks._webhook import Webhook
from wp_llm.webhooks.errors import (
    MalformedSignatureError,
    SignatureMismatchError,
    SignatureVerificationError,
    TimestampOutsideToleranceError,
)
from wp_llm.webhooks.events import Event

__all__ = ["ReceiverResponse", "WebhookReceiver"]

logger = logging.getLogger(__name__)

HandlerT = TypeVar("HandlerT", bound=Handler)

# Failures that mean the sender is not who it claims to be get 401. Other
# verification failures are malformed requests and get 400.
_AUTHENTICATION_ERRORS = (
    MalformedSignatureError,
    SignatureMismatchError,
    TimestampOutsideToleranceError,
)


@dataclass(frozen=True)
class ReceiverResponse:
    """The HTTP response to one delivery: a status code and a JSON body."""

    status_code: int
    body: dict[str, Any] = field(default_factory=dict)

    def json_bytes(self) -> bytes:
        """Serialize the body as compact UTF-8 JSON."""
        return json.dumps(self.body, ensure_ascii=False, separators=(",", ":")).encode()


def _error(status: HTTPStatus, error_type: str, message: str) -> ReceiverResponse:
    return ReceiverResponse(int(status), {"error": {"type": error_type, "message": message}})


def _received(event: Event[Any], *, handled: bool, **extra: Any) -> ReceiverResponse:
    body = {"received": True, "id": event.id, "type": event.type, "handled": handled}
    return ReceiverResponse(int(HTTPStatus.OK), body | extra)


def _call_sync(handler: Handler, event: Event[Any]) -> None:
    result = handler(event)
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()
        raise TypeError(
            f"handler {getattr(handler, '__qualname__', handler)!r} returned an awaitable, "
            "but this framework helper calls handlers synchronously; make it a plain def"
        )


class WebhookReceiver:
    """Verified, deduplicated dispatch of deliveries to handlers registered with `on`.

    `deduplicator` is required so that skipping duplicates is a decision: pass a
    `MemoryDeduplicator` for one process, `SQLiteDeduplicator` or `RedisDeduplicator`
    for several, or None to run handlers for every copy.
    """

    def __init__(self, webhook: Webhook, *, deduplicator: Deduplicator | None) -> None:
        if not isinstance(webhook, Webhook):
            raise TypeError(
                f"webhook must be a Webhook, got {type(webhook).__name__}; "
                "build it with Webhook(secret)"
            )
        self._webhook = webhook
        self._deduplicator = deduplicator
        self._registry = HandlerRegistry()

    def on(
        self, pattern: str, *, allow_unknown_type: bool = False
    ) -> Callable[[HandlerT], HandlerT]:
        """Register the decorated function for events matching `pattern`.

        `pattern` is an event type, a prefix wildcard such as `generation.*`, or `*`.
        Every matching handler runs, in registration order. A pattern that matches no
        catalog type raises ValueError unless `allow_unknown_type` is true.
        """
        validate_pattern(pattern, allow_unknown_type=allow_unknown_type)

        def register(handler: HandlerT) -> HandlerT:
            self._registry.add(pattern, handler)
            return handler

        return register

    def handle(self, body: BodyInput, headers: HeadersInput) -> ReceiverResponse:
        """Process one delivery, calling handlers synchronously, and return the response."""
        admitted = self._admit(body, headers)
        if isinstance(admitted, ReceiverResponse):
            return admitted

        event, handlers = admitted
        try:
            for handler in handlers:
                _call_sync(handler, event)
        except Exception as exc:
            return self._fail(event, exc)
        except BaseException:
            self._release(event)
            raise
        return self._succeed(event)

    async def handle_async(self, body: BodyInput, headers: HeadersInput) -> ReceiverResponse:
        """Process one delivery, awaiting async handlers, and return the response.

        Plain handlers and the deduplicator, which may block on I/O, run in a thread.
        """
        admitted = await asyncio.to_thread(self._admit, body, headers)
        if isinstance(admitted, ReceiverResponse):
            return admitted

        event, handlers = admitted
        try:
            for handler in handlers:
                await self._call_async(handler, event)
        except Exception as exc:
            return await asyncio.to_thread(self._fail, event, exc)
        except BaseException:
            # Cancelled, for example because the client disconnected. Releasing the claim
            # lets the service's retry through.
            self._release(event)
            raise
        return await asyncio.to_thread(self._succeed, event)

    @staticmethod
    async def _call_async(handler: Handler, event: Event[Any]) -> None:
        if inspect.iscoroutinefunction(handler):
            await handler(event)
            return
        result = await asyncio.to_thread(handler, event)
        if inspect.isawaitable(result):
            await result

    def _admit(
        self, body: BodyInput, headers: HeadersInput
    ) -> ReceiverResponse | tuple[Event[Any], list[Handler]]:
        request_headers = RequestHeaders(headers)
        try:
            event = self._webhook.verify(body, request_headers)
        except SignatureVerificationError as exc:
            return self._reject(exc, request_headers)

        handlers = self._registry.handlers_for(event)
        if not handlers:
            logger.info("no handler for event %s of type %s", event.id, event.type)
            note = f"no handler is registered for event type {event.type!r}"
            return _received(event, handled=False, note=note)

        if self._deduplicator is None:
            return event, handlers
        return self._claim(self._deduplicator, event, handlers)

    def _reject(
        self, error: SignatureVerificationError, headers: RequestHeaders
    ) -> ReceiverResponse:
        delivery_ids = headers.get_all(DELIVERY_ID_HEADER)
        delivery = quote(delivery_ids[0]) if delivery_ids else f"(no {DELIVERY_ID_HEADER})"
        logger.warning("rejected delivery %s: %s: %s", delivery, error.code, error.message)

        if isinstance(error, _AUTHENTICATION_ERRORS):
            return _error(HTTPStatus.UNAUTHORIZED, error.code, error.message)
        return _error(HTTPStatus.BAD_REQUEST, error.code, error.message)

    @staticmethod
    def _claim(
        deduplicator: Deduplicator, event: Event[Any], handlers: list[Handler]
    ) -> ReceiverResponse | tuple[Event[Any], list[Handler]]:
        try:
            if deduplicator.claim(event.id):
                return event, handlers
            completed = deduplicator.is_completed(event.id)
        except Exception:
            logger.exception("deduplicator failed for event %s", event.id)
            return _error(
                HTTPStatus.SERVICE_UNAVAILABLE,
                "deduplication_failed",
                f"could not check event {event.id} for duplicates; the service will retry",
            )

        if completed:
            logger.info("skipped duplicate of event %s", event.id)
            note = f"event {event.id} was already handled, so this copy was skipped"
            return _received(event, handled=False, duplicate=True, note=note)

        logger.info("event %s is still being handled; asking for a retry", event.id)
        return _error(
            HTTPStatus.CONFLICT,
            "duplicate_in_progress",
            f"another copy of event {event.id} is being handled; retry later",
        )

    def _succeed(self, event: Event[Any]) -> ReceiverResponse:
        if self._deduplicator is not None:
            try:
                self._deduplicator.complete(event.id)
            except Exception:
                # The handlers ran, so respond 200, because a retry would run them again.
                logger.exception("could not record event %s as handled", event.id)
        logger.info("handled event %s of type %s", event.id, event.type)
        return _received(event, handled=True)

    def _fail(self, event: Event[Any], error: Exception) -> ReceiverResponse:
        logger.error("handler failed for event %s of type %s", event.id, event.type, exc_info=error)
        self._release(event)
        return _error(
            HTTPStatus.INTERNAL_SERVER_ERROR,
            "handler_failed",
            f"the handler for event {event.id} failed; the service will retry the delivery",
        )

    def _release(self, event: Event[Any]) -> None:
        if self._deduplicator is None:
            return
        try:
            self._deduplicator.release(event.id)
        except Exception:
            logger.exception("could not release the claim on event %s", event.id)
