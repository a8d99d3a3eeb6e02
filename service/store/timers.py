"""Confirmation deadlines, kept in Redis so that they survive restarts and are shared by instances."""

from collections.abc import Sequence
from datetime import datetime

from redis.asyncio import Redis

from service.clock import to_epoch_ms
from service.domain.local_effects import ScheduleConfirmationTimeout
from service.store.keys import CONFIRMATION_TIMERS, order_ref
from service.store.scripts import LuaScript


class TimerStore:
    """Orders (`<client_id>/<order_id>`) by deadline; claiming leases them to one instance at a time."""

    def __init__(self, redis: "Redis") -> None:
        self._redis = redis
        self._claim = LuaScript("claim_due")

    async def load_scripts(self) -> None:
        """Load the Lua scripts up front."""
        await self._claim.load(self._redis)

    async def schedule(self, timers: Sequence[ScheduleConfirmationTimeout]) -> None:
        """Set deadlines that are not set yet (NX: a replayed schedule never postpones a claimed timer)."""
        if timers:
            await self._redis.zadd(
                CONFIRMATION_TIMERS,
                {order_ref(t.client_id, t.order_id): to_epoch_ms(t.deadline) for t in timers},
                nx=True,
            )

    async def claim_due(self, now: datetime, lease_seconds: float, limit: int) -> list[tuple[str, str]]:
        """The `(client_id, order_id)` of orders whose deadline passed, leased to the caller for
        `lease_seconds`."""
        claimed = await self._claim.run(
            self._redis, [CONFIRMATION_TIMERS], [to_epoch_ms(now), int(lease_seconds * 1000), limit]
        )
        return [_order_of(member.decode()) for member in claimed]

    async def remove(self, orders: Sequence[tuple[str, str]]) -> None:
        """Forget the timers of `(client_id, order_id)` orders that fired and whose effects are durable."""
        if orders:
            await self._redis.zrem(CONFIRMATION_TIMERS, *(order_ref(c, o) for c, o in orders))


def _order_of(member: str) -> tuple[str, str]:
    # The client id holds no `/` (`contracts.base.ClientIdentifier`): the first one separates the two.
    client_id, _, order_id = member.partition("/")
    return client_id, order_id
