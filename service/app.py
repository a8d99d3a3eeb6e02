"""Composition root of the order service: settings in, a runnable FastStream app out."""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from faststream.kafka import KafkaBroker
from redis.asyncio import Redis

from service.clock import utc_now
from service.config import Settings, policy_from
from service.consumers.deadlines import DeadlineWatcher
from service.consumers.processor import OrderProcessor
from service.consumers.publishing import OutboxPublisher
from service.consumers.routes import register_order_consumers
from service.kafka import ConsumingProcess, build_app, build_broker, ensure_service_topics
from service.store.client import connect_with
from service.store.command_outcomes import CommandOutcomeStore
from service.store.effect_runner import LocalEffects
from service.store.entitlements import EntitlementStore
from service.store.orders import OrderStore
from service.store.timers import TimerStore

log = logging.getLogger(__name__)

CLIENT_ID = "orders-service"
BROKER_DESCRIPTION = "Order service: commands and resource replies in, status events and requests out."


@dataclass
class OrderService(ConsumingProcess):
    """The wired service: its broker, Redis client and stores, and the FastStream app that runs them (`start`
    and `stop` for embedding, `app.run()` for the CLI: the same sequence)."""

    settings: Settings
    broker: KafkaBroker
    redis: "Redis"
    store: OrderStore
    entitlements: EntitlementStore
    timers: TimerStore
    deadlines: DeadlineWatcher
    publisher: OutboxPublisher

    def __post_init__(self) -> None:
        self.app = build_app(
            self.broker, client_id=CLIENT_ID, prepare=self.prepare, loops=[self.deadlines], close=self.close
        )

    async def prepare(self) -> None:
        """Create missing topics and load the Lua scripts; runs before the consumers start."""
        await ensure_service_topics(self.settings)
        await self.store.load_scripts()
        await self.entitlements.load_scripts()
        await self.timers.load_scripts()
        await self.publisher.start()
        log.info("service.starting", extra={"bootstrap_servers": self.settings.kafka_bootstrap_servers})

    async def close(self) -> None:
        """Flush the producer and release the Redis connections (after the consumers drained)."""
        await self.publisher.stop()
        await self.redis.aclose()


def build_service(settings: Settings, clock: Callable[[], datetime] = utc_now) -> OrderService:
    """Wire broker, store, processor and consumers from `settings`; connects nothing yet."""
    broker = build_broker(settings, client_id=CLIENT_ID, description=BROKER_DESCRIPTION)
    redis = connect_with(settings, reply_timeout=None)  # each batch is time-limited as a whole
    store = OrderStore(redis, settings.client_index_retention_seconds)
    entitlements = EntitlementStore(redis, record_seconds=settings.order_retention_seconds)
    timers = TimerStore(redis)
    publisher = OutboxPublisher(broker, settings)
    outcomes = CommandOutcomeStore(redis, settings.idempotency_retention_seconds)
    effects = LocalEffects(entitlements, timers, store, outcomes)
    processor = OrderProcessor(
        store=store,
        entitlements=entitlements,
        effects=effects,
        publisher=publisher,
        clock=clock,
        policy=policy_from(settings),
        claim_seconds=settings.idempotency_retention_seconds,
        timeout_seconds=settings.batch_timeout_seconds,
    )
    register_order_consumers(broker, settings, processor, publisher, outcomes, clock)
    deadlines = DeadlineWatcher(
        timers=timers,
        processor=processor,
        clock=clock,
        poll_seconds=settings.timer_poll_seconds,
        lease_seconds=settings.timer_lease_seconds,
        batch=settings.max_batch,
    )
    return OrderService(settings, broker, redis, store, entitlements, timers, deadlines, publisher)
