"""What the routes depend on, as typed `Annotated` aliases: the stores, the broker, the settings, the caller.

`build_api` puts one `ApiResources` on the app when it starts serving; only this module reads it.
"""

import math
from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from faststream.kafka import KafkaBroker
from redis.asyncio import Redis
from starlette.exceptions import HTTPException

from contracts.commands import OrderCommand
from service.clock import utc_now
from service.config import ApiSettings, Settings
from service.domain.command_outcomes import accepted
from service.kafka import client_topics
from service.store.authentication import ApiKeyStore, RateLimit
from service.store.command_outcomes import CommandOutcomeStore
from service.store.orders import OrderStore
from service.store.webhook_deliveries import DeliveryStore
from service.store.webhook_endpoints import EndpointStore


@dataclass(frozen=True)
class ApiResources:
    """Everything the routes use, built once per app from its settings."""

    settings: ApiSettings
    redis: Redis
    broker: KafkaBroker
    orders: OrderStore
    api_keys: ApiKeyStore
    endpoints: EndpointStore
    deliveries: DeliveryStore
    outcomes: CommandOutcomeStore


def _resources(request: Request) -> ApiResources:
    return cast(ApiResources, request.app.state.resources)


def api_settings(request: Request) -> ApiSettings:
    """The API's settings."""
    return _resources(request).settings


def redis_client(request: Request) -> Redis:
    """The API's Redis connection (for the readiness check; the routes use the stores)."""
    return _resources(request).redis


def kafka_broker(request: Request) -> KafkaBroker:
    """The broker commands are published through."""
    return _resources(request).broker


def order_store(request: Request) -> OrderStore:
    """Orders as stored by the service."""
    return _resources(request).orders


def api_key_store(request: Request) -> ApiKeyStore:
    """The clients' API keys."""
    return _resources(request).api_keys


def endpoint_store(request: Request) -> EndpointStore:
    """The clients' webhook endpoints."""
    return _resources(request).endpoints


def delivery_store(request: Request) -> DeliveryStore:
    """The relay's delivery queues, attempt logs and dead deliveries."""
    return _resources(request).deliveries


def outcome_store(request: Request) -> CommandOutcomeStore:
    """What became of the clients' commands."""
    return _resources(request).outcomes


@dataclass(frozen=True)
class CommandPublisher:
    """Publishes commands to the commands topic, keyed by order id like every producer of it."""

    broker: KafkaBroker
    settings: Settings
    outcomes: CommandOutcomeStore

    async def publish(self, command: OrderCommand) -> None:
        """Publish, wait for the broker's acknowledgement, then record the command `accepted` (only if it
        has no outcome yet: the service may have decided it already, or the command_id was used before)."""
        await self.broker.publish(
            command.model_dump_json().encode(),
            # The caller's own commands topic in the `per_client` layout, the shared one otherwise.
            topic=client_topics(self.settings, command.client_id).commands,
            key=command.order_id.encode(),
            headers={"content-type": "application/json"},
        )
        await self.outcomes.record_accepted(accepted(command, utc_now()))


def command_publisher(request: Request) -> CommandPublisher:
    """Where the command routes publish to."""
    resources = _resources(request)
    return CommandPublisher(resources.broker, resources.settings, resources.outcomes)


SettingsDep = Annotated[ApiSettings, Depends(api_settings)]
RedisDep = Annotated[Redis, Depends(redis_client)]
BrokerDep = Annotated[KafkaBroker, Depends(kafka_broker)]
CommandsDep = Annotated[CommandPublisher, Depends(command_publisher)]
OrdersDep = Annotated[OrderStore, Depends(order_store)]
ApiKeysDep = Annotated[ApiKeyStore, Depends(api_key_store)]
EndpointsDep = Annotated[EndpointStore, Depends(endpoint_store)]
DeliveriesDep = Annotated[DeliveryStore, Depends(delivery_store)]
OutcomesDep = Annotated[CommandOutcomeStore, Depends(outcome_store)]

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer ok_…`.")


async def calling_client(
    keys: ApiKeysDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """The client whose key made the request; 401 for a missing, unknown or revoked key, 429 (with
    `Retry-After`) for a key over its request rate. Each key has its own bucket: one client's traffic never
    slows another's."""
    rate = RateLimit(settings.api_rate_per_second, settings.api_rate_burst)
    caller = await keys.authenticate(credentials.credentials, rate) if credentials else None
    if caller is None:
        raise HTTPException(401, "a valid API key is required (Authorization: Bearer …)")
    if caller.retry_after_seconds > 0:
        raise HTTPException(
            429,
            f"this API key is over its rate of {settings.api_rate_per_second:g} requests a second "
            f"(bursts of {settings.api_rate_burst}); retry after the time in Retry-After",
            headers={"Retry-After": str(math.ceil(caller.retry_after_seconds))},
        )
    return caller.client_id


ClientIdDep = Annotated[str, Depends(calling_client)]
"""The id of the client whose API key made the request."""
