"""The FastAPI application and, when enabled, the in-process delivery worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request, Response
from sqlalchemy import text

from wp_llm import __version__
from wp_llm.server.api import deliveries, event_types, events, webhooks
from wp_llm.server.api.context import ServiceContext
from wp_llm.server.api.errors import install_error_handlers
from wp_llm.server.config import Settings
from wp_llm.server.crypto import load_secret_box
from wp_llm.server.db.engine import create_db_engine, migrate
from wp_llm.server.engine.netguard import AddressPolicy
from wp_llm.server.engine.worker import DeliveryWorker
from wp_llm.server.ids import new_id

logger = logging.getLogger(__name__)

WORKER_STOP_SECONDS = 30.0


def build_context(settings: Settings) -> ServiceContext:
    engine = create_db_engine(settings.resolved_database_url)
    migrate(engine)
    return ServiceContext(
        engine=engine,
        box=load_secret_box(settings.secret_key, settings.data_dir),
        settings=settings,
        address_policy=AddressPolicy(settings.allow_private_networks, settings.allowed_networks),
    )


def create_app(settings: Settings, context: ServiceContext | None = None) -> FastAPI:
    """Build the API; the database is migrated when the app starts."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = context or await asyncio.to_thread(build_context, settings)
        ctx.loop = asyncio.get_running_loop()
        app.state.context = ctx
        worker_task = None
        if settings.run_worker:
            worker = DeliveryWorker(ctx.engine, ctx.box, settings)
            ctx.wake_callbacks.append(worker.notify)
            worker_task = asyncio.create_task(worker.run())
        logger.info("api started", extra={"database": ctx.engine.dialect.name, "worker": settings.run_worker})
        try:
            yield
        finally:
            if worker_task is not None:
                worker.stop()
                await asyncio.wait_for(worker_task, WORKER_STOP_SECONDS)
            logger.info("api stopped")

    app = FastAPI(
        title="WP LLM Webhooks",
        version=__version__,
        description="Manage webhook endpoints, publish events and read the delivery log.",
        lifespan=lifespan,
    )
    install_error_handlers(app)

    @app.middleware("http")
    async def add_request_id(request: Request, call_next):  # type: ignore[no-untyped-def]
        request.state.request_id = new_id("req")
        response: Response = await call_next(request)
        response.headers["X-Request-Id"] = request.state.request_id
        return response

    for module in (webhooks, events, deliveries, event_types):
        app.include_router(module.router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz(request: Request) -> Response:
        with request.app.state.context.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return Response('{"status":"ready"}', media_type="application/json")

    return app
