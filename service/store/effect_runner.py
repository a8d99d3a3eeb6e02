"""Carrying out the local effects that decisions put in the outbox."""

from collections.abc import Sequence

from pydantic import TypeAdapter

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
from service.store.timers import PENDING_KINDS, Schedule, TimerStore

effect_adapter: TypeAdapter[Effect] = TypeAdapter(Effect)


def encode_effect(effect: Effect) -> bytes:
    """The outbox form of an effect."""
    return effect.model_dump_json().encode()


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

    async def run(self, encoded: Sequence[bytes]) -> None:
        """Carry out the encoded effects."""
        effects = [effect_adapter.validate_json(raw) for raw in encoded]
        await self._timers.schedule([e for e in effects if isinstance(e, Schedule)])
        await self._timers.remove(
            [(e.client_id, e.order_id) for e in effects if isinstance(e, CancelConfirmationTimeout)],
            kinds=PENDING_KINDS,
        )
        await self._entitlements.refund([e for e in effects if isinstance(e, RefundEntitlement)])
        await self._orders.index([e for e in effects if isinstance(e, IndexOrder)])
        outcomes = [e for e in effects if isinstance(e, RecordCommandOutcome)]
        if outcomes:
            await self._outcomes.record_decided(outcomes)
        anomalies = [
            (e.client_id, e.order_id, e.input_id, e.anomaly) for e in effects if isinstance(e, RecordAnomaly)
        ]
        if anomalies:
            await self._orders.record_anomalies(anomalies)
