"""Carrying out the local effects that decisions put in the outbox."""

from collections.abc import Sequence

import msgspec

from service.domain.local_effects import (
    CancelConfirmationTimeout,
    Effect,
    IndexOrder,
    RecordAnomaly,
    RecordCommandOutcome,
    RefundEntitlement,
)
from service.store.command_outcomes import CommandOutcomeStore
from service.store.entitlements import EntitlementStore
from service.store.orders import OrderStore
from service.store.outbox import OutboxEntry
from service.store.timers import PENDING_KINDS, Schedule, TimerStore

_ENCODER = msgspec.json.Encoder()
_DECODER: msgspec.json.Decoder[Effect] = msgspec.json.Decoder(Effect)


def encode_effect(effect: Effect) -> bytes:
    """The outbox form of an effect."""
    return _ENCODER.encode(effect)


def decode_effect(raw: bytes) -> Effect:
    """An effect from its outbox form; `msgspec.ValidationError` if it is not one."""
    return _DECODER.decode(raw)


def effect_of(entry: OutboxEntry) -> Effect:
    """The effect of a `LOCAL_EFFECT` entry: as decided, or parsed from the outbox (a crashed run's entry)."""
    return entry.effect if entry.effect is not None else decode_effect(entry.value)


class LocalEffects:
    """Runs effects in batches, in three steps around the batch's publication and acknowledgement (see
    `service.consumers.processor`); each effect is idempotent, so a replay after a crash changes nothing."""

    def __init__(
        self,
        entitlements: EntitlementStore,
        timers: TimerStore,
        orders: OrderStore,
        outcomes: CommandOutcomeStore,
    ) -> None:
        self._entitlements = entitlements
        self._timers = timers
        self._orders = orders
        self._outcomes = outcomes

    async def run_beside_publication(self, effects: Sequence[Effect]) -> None:
        """The effects that need not wait for the batch's messages to be published, and may be carried out
        again if publication fails: new deadlines and the client index in one round trip, refunds in
        another."""
        schedules = [e for e in effects if isinstance(e, Schedule)]
        indexed = [e for e in effects if isinstance(e, IndexOrder)]
        if schedules or indexed:
            pipe = self._orders.pipeline()
            self._timers.queue_schedule(pipe, schedules)
            self._orders.queue_index(pipe, indexed)
            await pipe.execute()
        refunds = [e for e in effects if isinstance(e, RefundEntitlement)]
        if refunds:
            await self._entitlements.refund(refunds)

    async def run_after_publication(self, effects: Sequence[Effect]) -> None:
        """The commands' outcomes (the API promises that an outcome's events are published) and the anomaly
        records (appended, not set: a publication that fails and is retried must not have written them)."""
        outcomes = [e for e in effects if isinstance(e, RecordCommandOutcome)]
        if outcomes:
            await self._outcomes.record_decided(outcomes)
        anomalies = [
            (e.client_id, e.order_id, e.input_id, e.anomaly) for e in effects if isinstance(e, RecordAnomaly)
        ]
        if anomalies:
            await self._orders.record_anomalies(anomalies)

    async def run_after_acknowledgement(self, effects: Sequence[Effect]) -> None:
        """The deadlines of orders that left Pending, forgotten once the batch's outbox is acknowledged.

        A confirmation deadline that fired is the only thing that carries out its own transition's outbox
        again after a crash (no Kafka offset stands behind it): forgotten any earlier, a batch that failed
        after its commit would leave the order Failed in Redis, its event never published. Forgotten later
        (a crash in between), the deadline fires on an order no longer Pending, which changes nothing, and
        is forgotten then. After the schedules too, as decided: a batch may set a deadline and cancel it."""
        cancelled = [(e.client_id, e.order_id) for e in effects if isinstance(e, CancelConfirmationTimeout)]
        if cancelled:
            await self._timers.remove(cancelled, kinds=PENDING_KINDS)
