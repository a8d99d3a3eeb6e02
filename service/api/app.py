"""Composition root of the HTTP API (`orders api`)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from redis.asyncio import Redis

from service.api.keys import ApiKeyStore
from service.api.problems import install_problem_handlers
from service.api.routes import operations, orders
from service.app import build_broker
from service.config import Settings
from service.store.orders import OrderStore


def build_api(settings: Settings) -> FastAPI:
    """The ASGI app; connects to Redis and Kafka when it starts serving."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = Redis.from_url(settings.redis_url)
        broker = build_broker(settings, client_id="orders-api")
        await broker.connect()
        app.state.redis, app.state.broker = redis, broker
        app.state.store, app.state.keys = OrderStore(redis), ApiKeyStore(redis)
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
    app.include_router(operations)
    install_problem_handlers(app)
    return app
