"""Composition root of the HTTP API (`orders api`)."""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from service import tracing
from service.api.access_log import AccessLog
from service.api.bodies import refuse_ambiguous_json
from service.api.command_outcomes import command_outcomes
from service.api.commands import commands
from service.api.dependencies import ApiResources
from service.api.portal import install_portal, portal_state
from service.api.problems import install_problem_handlers, problem
from service.api.routes import operations, orders
from service.api.webhooks import webhooks
from service.config import ApiSettings
from service.kafka import build_broker
from service.store.authentication import ApiKeyStore
from service.store.client import connect_with
from service.store.command_outcomes import CommandOutcomeStore
from service.store.orders import OrderStore
from service.store.webhook_deliveries import DeliveryStore
from service.store.webhook_endpoints import EndpointStore

MAX_BODY_BYTES = 256 * 1024
"""As much as the service takes from Kafka by default (`ORDERS_MAX_MESSAGE_BYTES`): room for the largest
command inside the contract's limits however it is encoded (`contracts.limits.MAX_COMMAND_BYTES`)."""


def build_api(settings: ApiSettings) -> FastAPI:
    """The ASGI app; connects to Redis and Kafka when it starts serving."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = connect_with(settings)
        broker = build_broker(settings, client_id="orders-api", middlewares=tracing.kafka_middlewares())
        await broker.connect()
        app.state.resources = ApiResources(
            settings=settings,
            redis=redis,
            broker=broker,
            orders=OrderStore(redis),
            api_keys=ApiKeyStore(redis),
            endpoints=EndpointStore(redis),
            deliveries=DeliveryStore(redis),
            outcomes=CommandOutcomeStore(redis, settings.idempotency_retention_seconds),
        )
        app.state.portal = portal_state(settings, redis)
        try:
            yield
        finally:
            await broker.stop()
            await redis.aclose()

    app = FastAPI(
        title="Order service API",
        version="1.0.0",
        description="Order Details for clients that follow their orders over HTTP; health and metrics.",
        lifespan=lifespan,
    )
    app.include_router(orders)
    app.include_router(commands)
    app.include_router(command_outcomes)
    app.include_router(webhooks)
    app.include_router(operations)
    install_problem_handlers(app)
    install_portal(app)
    app.middleware("http")(refuse_ambiguous_json)

    # Added last, so it runs first: the bodies it lets through are of a bounded size.
    @app.middleware("http")
    async def limit_body(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return problem(413, f"request bodies are limited to {MAX_BODY_BYTES} bytes")
        if length is None and "chunked" in request.headers.get("transfer-encoding", ""):
            # A chunked body would escape the size check: ask for its length up front instead.
            return problem(
                411, "send Content-Length; chunked request bodies are not accepted", "LENGTH_REQUIRED"
            )
        return await call_next(request)

    # Outermost, so that every answer is logged, the middlewares' own refusals too.
    app.add_middleware(AccessLog)
    tracing.instrument_api(app)  # outermost of all: a request's span covers the refusals too
    return app
