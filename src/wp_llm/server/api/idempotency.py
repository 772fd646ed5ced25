"""Idempotency keys: a POST sent again with the same `Idempotency-Key` runs only once.

The middleware acts on POST requests under /v1/ that carry the header, and passes every
other request through after a glance at its method, path and headers. For a keyed request:

1. The key belongs to the caller's account (or to a service key itself), so the
   middleware authenticates the bearer token. A request that fails authentication goes
   on to the route, which responds with 401, and nothing is stored.
2. One INSERT claims the key in its own transaction, marking it in progress. The
   primary key (scope, key) decides a race between two identical requests: one insert
   wins and the other finds the row.
3. The route runs. A response below 500, except 429, is stored with the key before its
   last part goes out. A 5xx, a 429 or an exception deletes the claim instead, so the
   client's retry runs the request again. The exception is a 503
   `commit_outcome_unknown`: the request's writes may be stored, so it is kept like a
   success, and a retry gets it again rather than storing them twice.

A later request with the key within `KEY_TTL_SECONDS` gets the stored response again with
`Idempotent-Replayed: true` when its method, path and body hash the same, and 409
`idempotency_key_reused` when they differ. While the first request runs, others get 409
`idempotency_request_in_progress` with `Retry-After`. Stored bodies are encrypted with the
service's secret key, because the response to creating a webhook contains its signing secret.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from starlette.requests import Request

from wp_llm.server.api.context import BEARER_PREFIX, ServiceContext
from wp_llm.server.api.errors import envelope
from wp_llm.server.crypto import SecretBox
from wp_llm.server.db.schema import idempotency_keys
from wp_llm.server.errors import AuthenticationFailed
from wp_llm.server.store.commit_check import CommitCheckFailed

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
_T = TypeVar("_T")

HEADER_NAME = "Idempotency-Key"
REPLAYED_HEADER_NAME = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
KEY_TTL_SECONDS = 24 * 3600
# An in-progress claim this old is taken to belong to a process that died mid-request.
# NOTE: a request that really runs longer loses its claim, and a retry may run it twice.
# The slowest route, a webhook test, is bounded by the delivery timeout (15 s by default).
ABANDONED_CLAIM_SECONDS = 300
PURGE_INTERVAL_SECONDS = 600.0
IN_PROGRESS_RETRY_AFTER_SECONDS = 1
IN_PROGRESS = 0
TOO_MANY_REQUESTS = 429
# A claim can find a row that its holder deletes right after, so it tries again a few times.
MAX_CLAIM_ROUNDS = 3


@dataclass(frozen=True)
class StoredKey:
    """A row of `idempotency_keys`; `status_code` is 0 while its request runs."""

    request_hash: str
    status_code: int
    response_body: bytes
    created: int

    def is_expired(self, now: int) -> bool:
        if self.created <= now - KEY_TTL_SECONDS:
            return True
        return self.status_code == IN_PROGRESS and self.created <= now - ABANDONED_CLAIM_SECONDS


@dataclass(frozen=True)
class KeyedRequest:
    """The identity of one keyed request: the key's scope, the key, and the request's hash."""

    scope: str
    key: str
    request_hash: str


def hash_request(method: str, target: bytes, body: bytes) -> str:
    """Return the SHA-256 over method, path with query, and raw body, NUL-separated."""
    digest = hashlib.sha256(method.encode("ascii"))
    for part in (target, body):
        digest.update(b"\0")
        digest.update(part)
    return digest.hexdigest()


def claim_key(engine: Engine, request: KeyedRequest, now: int) -> StoredKey | None:
    """Mark the key in progress for `request` and return None, or return the key's live row."""
    for _ in range(MAX_CLAIM_ROUNDS):
        if _insert_claim(engine, request, now):
            return None
        existing = _find(engine, request)
        if existing is None:
            continue
        if not existing.is_expired(now):
            return existing
        if _take_over(engine, request, existing, now):
            return None
    return StoredKey(request.request_hash, IN_PROGRESS, b"", now)


def _insert_claim(engine: Engine, request: KeyedRequest, now: int) -> bool:
    row = {
        "scope": request.scope,
        "key": request.key,
        "request_hash": request.request_hash,
        "status_code": IN_PROGRESS,
        "response_body": b"",
        "created": now,
    }
    try:
        with engine.begin() as connection:
            connection.execute(insert(idempotency_keys).values(**row))
    except IntegrityError:
        return False
    return True


def _row_filter(request: KeyedRequest) -> tuple[Any, ...]:
    return (idempotency_keys.c.scope == request.scope, idempotency_keys.c.key == request.key)


def _find(engine: Engine, request: KeyedRequest) -> StoredKey | None:
    columns = (
        idempotency_keys.c.request_hash,
        idempotency_keys.c.status_code,
        idempotency_keys.c.response_body,
        idempotency_keys.c.created,
    )
    with engine.connect() as connection:
        row = connection.execute(select(*columns).where(*_row_filter(request))).first()
    return None if row is None else StoredKey(row[0], row[1], bytes(row[2]), row[3])


def _take_over(engine: Engine, request: KeyedRequest, expired: StoredKey, now: int) -> bool:
    # Matching the expired row's values makes this a compare-and-set: of two requests that
    # both found the row expired, only the first update matches.
    statement = (
        update(idempotency_keys)
        .where(
            *_row_filter(request),
            idempotency_keys.c.created == expired.created,
            idempotency_keys.c.status_code == expired.status_code,
        )
        .values(
            request_hash=request.request_hash,
            status_code=IN_PROGRESS,
            response_body=b"",
            created=now,
        )
    )
    with engine.begin() as connection:
        return connection.execute(statement).rowcount == 1


def _own_claim(request: KeyedRequest, claimed_at: int) -> tuple[Any, ...]:
    return (
        *_row_filter(request),
        idempotency_keys.c.created == claimed_at,
        idempotency_keys.c.status_code == IN_PROGRESS,
    )


def store_response(
    engine: Engine, request: KeyedRequest, claimed_at: int, status_code: int, body: bytes
) -> None:
    """Complete this request's claim with its response."""
    statement = (
        update(idempotency_keys)
        .where(*_own_claim(request, claimed_at))
        .values(status_code=status_code, response_body=body)
    )
    with engine.begin() as connection:
        connection.execute(statement)


def release_claim(engine: Engine, request: KeyedRequest, claimed_at: int) -> None:
    """Delete this request's claim, so that a retry with the key runs the request again."""
    with engine.begin() as connection:
        connection.execute(delete(idempotency_keys).where(*_own_claim(request, claimed_at)))


def purge_expired(engine: Engine, now: int) -> int:
    """Delete the rows older than the key lifetime; return how many went."""
    # NOTE: `created` has no index, so this scans the table: about one day of keyed POSTs.
    statement = delete(idempotency_keys).where(idempotency_keys.c.created <= now - KEY_TTL_SECONDS)
    with engine.begin() as connection:
        return int(connection.execute(statement).rowcount or 0)


def seal(box: SecretBox, body: bytes) -> bytes:
    """Encrypt a response body for storage."""
    return box.encrypt(base64.b64encode(body).decode("ascii")).encode("ascii")


def unseal(box: SecretBox, sealed: bytes) -> bytes:
    return base64.b64decode(box.decrypt(sealed.decode("ascii")))


class IdempotencyMiddleware:
    """Pure ASGI middleware that runs each keyed POST once and replays its stored response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._next_purge = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not scope["path"].startswith("/v1/")
        ):
            await self.app(scope, receive, send)
            return
        key, authorization = _key_and_authorization(scope)
        if key is None:
            await self.app(scope, receive, send)
            return

        problem = _key_problem(key)
        if problem is not None:
            await _reject(scope, receive, send, 400, "validation_error", problem)
            return
        try:
            await self._handle_keyed(scope, receive, send, key, authorization)
        except _DatabaseUnavailable:
            await _reject_unavailable(scope, receive, send)

    async def _handle_keyed(
        self, scope: Scope, receive: Receive, send: Send, key: str, authorization: str | None
    ) -> None:
        context: ServiceContext = scope["app"].state.context
        account_scope = await _authenticated_scope(context, authorization)
        if account_scope is None:
            await self.app(scope, receive, send)
            return

        body = await _read_body(receive)
        if body is None:
            return
        request = KeyedRequest(account_scope, key, hash_request("POST", _target(scope), body))
        now = int(time.time())
        existing = await _in_thread(claim_key, context.engine, request, now)
        if existing is not None:
            await _respond_to_repeat(context, request, existing, scope, receive, send)
            return

        await self._run_claimed(context, request, now, scope, _replay(body, receive), send)
        await self._purge_now_and_then(context.engine, now)

    async def _run_claimed(
        self,
        context: ServiceContext,
        request: KeyedRequest,
        claimed_at: int,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        async def finish(status_code: int, body: bytes) -> None:
            if _is_replayable(status_code, body):
                sealed = seal(context.box, body)
                await _finish_quietly(
                    store_response, context.engine, request, claimed_at, status_code, sealed
                )
            else:
                await _finish_quietly(release_claim, context.engine, request, claimed_at)

        recorder = _ResponseRecorder(send, finish)
        try:
            await self.app(scope, receive, recorder.send)
        finally:
            if not recorder.finished:
                # The route raised or sent no complete response, so a retry must run it again.
                with anyio.CancelScope(shield=True):
                    await _finish_quietly(release_claim, context.engine, request, claimed_at)

    async def _purge_now_and_then(self, engine: Engine, now: int) -> None:
        """Delete expired keys, at most once per `PURGE_INTERVAL_SECONDS` in this process."""
        if time.monotonic() < self._next_purge:
            return
        self._next_purge = time.monotonic() + PURGE_INTERVAL_SECONDS
        try:
            purged = await anyio.to_thread.run_sync(purge_expired, engine, now)
        except SQLAlchemyError as error:
            logger.warning("idempotency key purge failed", extra={"error": str(error)[:200]})
            return
        if purged:
            logger.info("expired idempotency keys purged", extra={"count": purged})


class _DatabaseUnavailable(Exception):
    """The database failed while the middleware itself used it."""


async def _in_thread(function: Callable[..., _T], *args: Any) -> _T:
    try:
        return await anyio.to_thread.run_sync(function, *args)
    except OperationalError as error:
        logger.warning(
            "database unavailable for an idempotency key", extra={"error": str(error)[:200]}
        )
        raise _DatabaseUnavailable from error


async def _finish_quietly(function: Callable[..., None], *args: Any) -> None:
    # The response is out or the route failed, so a database error here can only be logged.
    # The claim then stays in progress until it counts as abandoned.
    try:
        await anyio.to_thread.run_sync(function, *args)
    except SQLAlchemyError as error:
        logger.warning("idempotency key not updated", extra={"error": str(error)[:200]})


def _target(scope: Scope) -> bytes:
    """Return the request target as the client sent it: raw path, then `?query` if any."""
    target = bytes(scope.get("raw_path") or scope["path"].encode("utf-8"))
    if scope.get("query_string"):
        target += b"?" + bytes(scope["query_string"])
    return target


class _ResponseRecorder:
    """Passes the response through and calls `finish` with it before its last part goes out.

    Because the response is stored before the client has all of it, a client that got a
    response and sends the key again finds that response stored.
    """

    def __init__(self, send: Send, finish: Callable[[int, bytes], Awaitable[None]]) -> None:
        self._send = send
        self._finish = finish
        self._status_code = 0
        self._chunks: list[bytes] = []
        self.finished = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._status_code = int(message["status"])
        elif message["type"] == "http.response.body":
            self._chunks.append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                with anyio.CancelScope(shield=True):
                    await self._finish(self._status_code, b"".join(self._chunks))
                self.finished = True
        await self._send(message)


def _is_replayable(status_code: int, body: bytes) -> bool:
    """Tell whether a retry should get this response again instead of running anew."""
    if status_code == CommitCheckFailed.status_code:
        return _error_code(body) == CommitCheckFailed.default_code
    # A 429 (rate limit or quota) and a 5xx are transient: the retry must run again.
    return 0 < status_code < 500 and status_code != TOO_MANY_REQUESTS


def _error_code(body: bytes) -> str | None:
    """Return the `code` of an error envelope, or None for any other body."""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return None
    return error.get("code") if isinstance(error, dict) else None


def _key_and_authorization(scope: Scope) -> tuple[str | None, str | None]:
    key = authorization = None
    for name, value in scope["headers"]:
        if name == b"idempotency-key":
            key = value.decode("latin-1")
        elif name == b"authorization":
            authorization = value.decode("latin-1")
    return key, authorization


def _key_problem(key: str) -> str | None:
    if not key.strip():
        return f"The {HEADER_NAME} header is empty; send a unique value such as a UUID, or omit it."
    if len(key) > MAX_KEY_LENGTH:
        return (
            f"The {HEADER_NAME} header is {len(key)} characters long; "
            f"the maximum is {MAX_KEY_LENGTH}. Use a UUID."
        )
    return None


async def _authenticated_scope(context: ServiceContext, authorization: str | None) -> str | None:
    """Return the caller's idempotency scope, or None when the route should respond with 401."""
    if not authorization or not authorization.lower().startswith(BEARER_PREFIX):
        return None
    token = authorization[len(BEARER_PREFIX) :].strip()
    if not token:
        return None
    # The route authenticates through the same cache, so both see the same principal.
    principal = context.principals.cached(token)
    if principal is not None:
        return principal.scope
    try:
        principal = await _in_thread(context.principals.authenticate, context.engine, token)
    except AuthenticationFailed:
        return None
    return principal.scope


async def _read_body(receive: Receive) -> bytes | None:
    """Read the whole request body; None when the client disconnected before sending it all."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """Return a receive callable that yields the buffered body once, then the client's messages."""
    delivered = False

    async def replayed() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


async def _respond_to_repeat(
    context: ServiceContext,
    request: KeyedRequest,
    existing: StoredKey,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    if existing.request_hash != request.request_hash:
        logger.info("idempotency key reused for another request", extra={"scope": request.scope})
        message = (
            f"The {HEADER_NAME} {request.key[:100]!r} was already used for a different request "
            "(another method, path or body); send a new key for a new request."
        )
        await _reject(
            scope, receive, send, 409, "resource_error", message, code="idempotency_key_reused"
        )
    elif existing.status_code == IN_PROGRESS:
        logger.info("idempotent request still in progress", extra={"scope": request.scope})
        message = (
            f"A request with the {HEADER_NAME} {request.key[:100]!r} is still running; "
            "retry shortly to get its response."
        )
        headers = {"Retry-After": str(IN_PROGRESS_RETRY_AFTER_SECONDS)}
        await _reject(
            scope,
            receive,
            send,
            409,
            "resource_error",
            message,
            code="idempotency_request_in_progress",
            headers=headers,
        )
    else:
        logger.info(
            "idempotent replay", extra={"scope": request.scope, "status": existing.status_code}
        )
        await _send_replay(existing.status_code, unseal(context.box, existing.response_body), send)


async def _reject(
    scope: Scope,
    receive: Receive,
    send: Send,
    status_code: int,
    error_type: str,
    message: str,
    *,
    code: str = "invalid_idempotency_key",
    headers: dict[str, str] | None = None,
) -> None:
    response = envelope(
        Request(scope),
        status_code,
        error_type=error_type,
        code=code,
        message=message,
        details={"field": HEADER_NAME},
        headers=headers,
    )
    await response(scope, receive, send)


async def _reject_unavailable(scope: Scope, receive: Receive, send: Send) -> None:
    response = envelope(
        Request(scope),
        503,
        error_type="server_error",
        code="service_unavailable",
        message="The database is unavailable; retry the request shortly.",
        headers={"Retry-After": str(IN_PROGRESS_RETRY_AFTER_SECONDS)},
    )
    await response(scope, receive, send)


async def _send_replay(status_code: int, body: bytes, send: Send) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode("ascii")),
        (REPLAYED_HEADER_NAME.lower().encode("ascii"), b"true"),
    ]
    await send({"type": "http.response.start", "status": status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
