"""The FastAPI application and, when enabled, the in-process delivery worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Mapping

from fastapi import FastAPI, Request, Response
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import text

from wp_llm import __version__
from wp_llm.server import dashboard
from wp_llm.server.api import deliveries, event_types, events, stats, webhooks
from wp_llm.server.api.context import ServiceContext
from wp_llm.server.api.errors import install_error_handlers
from wp_llm.server.api.idempotency import IdempotencyMiddleware
from wp_llm.server.api.publish_path import PublishPathMiddleware
from wp_llm.server.api.request_guard import RequestGuardMiddleware
from wp_llm.server.api.request_id import RequestIdMiddleware
from wp_llm.server.config import Settings
from wp_llm.server.crypto import load_secret_box
from wp_llm.server.db.engine import create_db_engine, migrate
from wp_llm.server.engine import metrics
from wp_llm.server.engine.netguard import AddressPolicy
from wp_llm.server.engine.worker import STOP_WRITE_SECONDS, DeliveryWorker
from wp_llm.server.gc_tuning import freeze_startup_objects
from wp_llm.server.usage.clock import create_clock
from wp_llm.server.usage.guard import RateLimitGuard
from wp_llm.server.usage.limiters import create_rate_limiter

logger = logging.getLogger(__name__)

# Environment variables that set up OpenTelemetry, for FastAPI or for the OpenTelemetry SDK.
OTEL_PREFIXES = ("OTEL_", "FASTAPI_OTEL_")
# Beyond the worker's own shutdown deadline and final writes, before the lifespan gives up.
WORKER_STOP_MARGIN_SECONDS = 5.0


def build_context(settings: Settings) -> ServiceContext:
    # The key comes first, so that a bad key file stops the start before any migration.
    box = load_secret_box(settings.secret_key, settings.data_dir)
    engine = create_db_engine(settings.resolved_database_url, pool_size=settings.database_pool_size)
    migrate(engine)
    context = ServiceContext(
        engine=engine,
        box=box,
        settings=settings,
        address_policy=AddressPolicy(settings.allow_private_networks, settings.allowed_networks),
        clock=create_clock(settings.clock_offset_file),
    )
    limiter = create_rate_limiter(engine, settings.rate_limit_store)
    context.rate_guard = RateLimitGuard(
        engine, limiter, context.clock, settings, on_deliveries=context.notify_workers
    )
    return context


def telemetry_config(environment: Mapping[str, str]) -> TelemetryConfig | None:
    """Return FastAPI's OpenTelemetry settings: its defaults when OTEL_* variables are set.

    Without any, FastAPI's hooks are turned off, because checking for configured
    providers on every request took about 8 % of the CPU time of publishing an event.
    """
    if any(name.startswith(OTEL_PREFIXES) for name in environment):
        return None
    return {"tracing": False, "metrics": False, "logs": False}


def create_app(
    settings: Settings, context: ServiceContext | None = None, *, tune_gc: bool = False
) -> FastAPI:
    """Build the API; the database is migrated when the app starts.

    With `tune_gc`, as `wp-llm serve` runs it, the garbage collector stops scanning
    what start-up built (see `gc_tuning`). Apps embedded in another process leave
    that process's collector alone.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = context if context is not None else await asyncio.to_thread(build_context, settings)
        ctx.loop = asyncio.get_running_loop()
        app.state.context = ctx
        worker_task = None
        if settings.run_worker:
            worker = DeliveryWorker(ctx.engine, ctx.box, settings)
            ctx.wake_callbacks.append(worker.notify)
            ctx.publishes.hand_off_to(worker)
            worker_task = asyncio.create_task(worker.run())
        sampling = metrics.sample_database(ctx.engine, settings.metrics_interval)
        sampler = asyncio.create_task(sampling)
        if tune_gc:
            freeze_startup_objects()
        logger.info(
            "api started",
            extra={"database": ctx.engine.dialect.name, "worker": settings.run_worker},
        )
        try:
            yield
        finally:
            sampler.cancel()
            if worker_task is not None:
                worker.stop()
                limit = settings.shutdown_timeout + STOP_WRITE_SECONDS + WORKER_STOP_MARGIN_SECONDS
                await asyncio.wait_for(worker_task, limit)
            logger.info("api stopped")

    app = FastAPI(
        title="WP LLM Webhooks",
        version=__version__,
        description="Manage webhook endpoints, publish events and read the delivery log.",
        lifespan=lifespan,
        telemetry=telemetry_config(os.environ),
    )
    install_error_handlers(app)
    # Each middleware added runs inside the ones added after it. The publish path comes
    # first, so idempotency keys, the request guard and request ids apply to it too.
    app.add_middleware(PublishPathMiddleware)
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(RequestGuardMiddleware, max_request_bytes=settings.max_request_bytes)

    # Added last, so it is the outermost: every response, errors included, carries the id.
    app.add_middleware(RequestIdMiddleware)

    for module in (webhooks, events, deliveries, event_types, stats):
        app.include_router(module.router)
    app.include_router(dashboard.router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz(request: Request) -> Response:
        with request.app.state.context.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return Response('{"status":"ready"}', media_type="application/json")

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        # Totals only, with no account or webhook labels, so nothing private is exposed.
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return app
