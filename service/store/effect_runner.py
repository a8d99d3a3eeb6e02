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
    """Runs effects in batches; each effect is idempotent, so a replay after a crash changes nothing."""

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

    async def run(self, effects: Sequence[Effect]) -> None:
        """Carry out the effects: `run_beside_publication`, then `run_after_publication`."""
        await self.run_beside_publication(effects)
        await self.run_after_publication(effects)

    async def run_beside_publication(self, effects: Sequence[Effect]) -> None:
        """The effects that need not wait for the batch's messages to be published, and may be carried out
        again if publication fails: timers and the client index in one round trip, refunds in another."""
        schedules = [e for e in effects if isinstance(e, Schedule)]
        cancelled = [(e.client_id, e.order_id) for e in effects if isinstance(e, CancelConfirmationTimeout)]
        indexed = [e for e in effects if isinstance(e, IndexOrder)]
        if schedules or cancelled or indexed:
            pipe = self._orders.pipeline()
            # In this order, as the effects were decided: a batch may schedule a deadline and cancel it.
            self._timers.queue_schedule(pipe, schedules)
            self._timers.queue_remove(pipe, cancelled, kinds=PENDING_KINDS)
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
