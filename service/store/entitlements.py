"""Entitlement balances per client and credential, consumed by walk-ins and refunded by cancellations."""

from collections.abc import Sequence

from redis.asyncio import Redis

from service.domain.local_effects import EntitlementCheck, RefundEntitlement
from service.domain.policy import DEFAULT_ORDER_RETENTION
from service.store.keys import entitlement_consumption_key, entitlement_key
from service.store.scripts import LuaScript


class EntitlementStore:
    """Each operation is one single-slot atomic step, idempotent per walk-in input.

    What a walk-in took is recorded under a key of its own that expires after `record_seconds`: the order
    retention, which the settings keep at least as long as the idempotency retention (a re-delivered walk-in
    must find its record) and every cancellation window (a cancellation must find what to refund).
    """

    def __init__(
        self, redis: "Redis", *, record_seconds: int = int(DEFAULT_ORDER_RETENTION.total_seconds())
    ) -> None:
        self._redis = redis
        self._record_seconds = record_seconds
        self._consume = LuaScript("consume_entitlement")
        self._refund = LuaScript("refund_entitlement")

    async def load_scripts(self) -> None:
        """Load the Lua scripts up front."""
        await self._consume.load(self._redis)
        await self._refund.load(self._redis)

    async def consume(self, requests: Sequence[tuple[str, str, str, int]]) -> list[EntitlementCheck]:
        """Take units for `(client_id, credential, input_id, units)` requests; one round trip for all."""
        replies = await self._consume.run_many(
            self._redis,
            [
                (
                    [
                        entitlement_key(client, credential),
                        entitlement_consumption_key(client, credential, input_id),
                    ],
                    [input_id, units, self._record_seconds],
                )
                for client, credential, input_id, units in requests
            ],
        )
        return [EntitlementCheck(reply.decode()) for reply in replies]

    async def refund(self, refunds: Sequence[RefundEntitlement]) -> list[int]:
        """Carry out refunds; returns the units given back by each (0 if it had been done before)."""
        calls = [
            (
                [
                    entitlement_key(r.client_id, r.credential),
                    entitlement_consumption_key(r.client_id, r.credential, r.consumption_id),
                ],
                [r.consumption_id],
            )
            for r in refunds
        ]
        return [int(units) for units in await self._refund.run_many(self._redis, calls)]

    async def grant(self, client_id: str, credential: str, units: int) -> int:
        """Add `units` (negative to withdraw) to a credential's balance, creating it; returns the balance."""
        return int(await self._redis.hincrby(entitlement_key(client_id, credential), "balance", units))

    async def balance(self, client_id: str, credential: str) -> int | None:
        """The credential's balance, or None if it has no entitlement."""
        value = await self._redis.hget(entitlement_key(client_id, credential), "balance")
        return int(value) if value is not None else None
