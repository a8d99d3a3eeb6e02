"""Order deadlines, kept in Redis so that they survive restarts and are shared by instances.

One sorted set per kind of deadline (`TimerKind`): the confirmation deadline of a Pending order, the later
waitlist deadline of one with a waitlisted item, the no-show deadline of a confirmed one, and the deadline
of a change (`change_order`) awaiting its resource.

The last two are *dated*: their member carries its deadline (`<client_id>/<order_id>/<epoch ms>`), and so
does the input it fires (`timer/<kind>/<order_id>/<epoch ms>`). An order may then hold several of them at
once (a change moves its no-show deadline; each change has its own), each fired once and told apart from a
replay of another; the handler fires on the order's current deadline and ignores a stale one. An order holds
at most `MAX_CHANGES_PER_ORDER` + 1 of each, and each is removed once it fired.
"""

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from redis.asyncio import Redis

from service.clock import to_epoch_ms
from service.domain.local_effects import (
    ScheduleChangeTimeout,
    ScheduleConfirmationTimeout,
    ScheduleNoShow,
    ScheduleWaitlistTimeout,
)
from service.store.keys import (
    CHANGE_TIMERS,
    CONFIRMATION_TIMERS,
    NO_SHOW_TIMERS,
    WAITLIST_TIMERS,
    order_ref,
)
from service.store.raw_pipeline import RawPipeline
from service.store.scripts import LuaScript


class TimerKind(StrEnum):
    """A kind of deadline; each has a sorted set of its own and its own input (`timer/<kind>/<order_id>`)."""

    CONFIRMATION = "confirmation"
    WAITLIST = "waitlist"
    NO_SHOW = "no_show"
    CHANGE = "change"

    @property
    def dated(self) -> bool:
        """Whether a member (and the input it fires) carries its deadline: one order may hold several."""
        return self in (TimerKind.NO_SHOW, TimerKind.CHANGE)

    @property
    def key(self) -> str:
        """The sorted set of this kind's deadlines."""
        return _KEYS[self]


_KEYS = {
    TimerKind.CONFIRMATION: CONFIRMATION_TIMERS,
    TimerKind.WAITLIST: WAITLIST_TIMERS,
    TimerKind.NO_SHOW: NO_SHOW_TIMERS,
    TimerKind.CHANGE: CHANGE_TIMERS,
}

PENDING_KINDS = (TimerKind.CONFIRMATION, TimerKind.WAITLIST)
"""The deadlines of a Pending order: cleared when it leaves Pending (`CancelConfirmationTimeout`)."""

Schedule = ScheduleConfirmationTimeout | ScheduleWaitlistTimeout | ScheduleNoShow | ScheduleChangeTimeout


class TimerStore:
    """Orders (`<client_id>/<order_id>`) by deadline; claiming leases them to one instance at a time."""

    def __init__(self, redis: "Redis") -> None:
        self._redis = redis
        self._claim = LuaScript("claim_due")

    async def load_scripts(self) -> None:
        """Load the Lua scripts up front."""
        await self._claim.load(self._redis)

    async def schedule(self, timers: Sequence[Schedule]) -> None:
        """Set deadlines that are not set yet (NX: a replayed schedule never postpones a claimed timer)."""
        pipe = RawPipeline(self._redis)
        self.queue_schedule(pipe, timers)
        await pipe.execute()

    @staticmethod
    def queue_schedule(pipe: RawPipeline, timers: Sequence[Schedule]) -> None:
        """`schedule`, queued on `pipe` (one ZADD per kind that has deadlines)."""
        by_kind: dict[TimerKind, dict[str, int]] = {}
        for t in timers:
            kind, deadline_ms = _kind_of(t), to_epoch_ms(t.deadline)
            by_kind.setdefault(kind, {})[_member(kind, t.client_id, t.order_id, deadline_ms)] = deadline_ms
        for kind, members in by_kind.items():
            scored = [part for member, score in members.items() for part in (score, member)]
            pipe.command(kind.key, "ZADD", kind.key, "NX", *scored)

    async def claim_due(
        self, now: datetime, lease_seconds: float, limit: int, kind: TimerKind = TimerKind.CONFIRMATION
    ) -> list[tuple[str, str]]:
        """The `(client_id, order_id)` of orders whose `kind` deadline passed, leased to the caller for
        `lease_seconds`; for a dated kind, the order id is followed by `/<epoch ms>` (`dated_order`)."""
        claimed = await self._claim.run(
            self._redis, [kind.key], [to_epoch_ms(now), int(lease_seconds * 1000), limit]
        )
        return [_order_of(member.decode()) for member in claimed]

    async def remove(
        self,
        orders: Sequence[tuple[str, str]],
        kinds: Sequence[TimerKind] = (TimerKind.CONFIRMATION,),
    ) -> None:
        """Forget the `kinds` deadlines of `(client_id, order_id)` orders: ones that fired and whose effects
        are durable, or every kind for orders that left Pending."""
        if orders:
            pipe = RawPipeline(self._redis)
            members = [order_ref(c, o) for c, o in orders]
            for kind in kinds:
                pipe.command(kind.key, "ZREM", kind.key, *members)
            await pipe.execute()


def _kind_of(timer: Schedule) -> TimerKind:
    if isinstance(timer, ScheduleChangeTimeout):
        return TimerKind.CHANGE
    if isinstance(timer, ScheduleWaitlistTimeout):
        return TimerKind.WAITLIST
    if isinstance(timer, ScheduleNoShow):
        return TimerKind.NO_SHOW
    return TimerKind.CONFIRMATION


def _member(kind: TimerKind, client_id: str, order_id: str, deadline_ms: int) -> str:
    return f"{order_ref(client_id, order_id)}/{deadline_ms}" if kind.dated else order_ref(client_id, order_id)


def dated_order(claimed_order_id: str) -> tuple[str, str]:
    """`(order_id, deadline suffix)` of an order id claimed from a dated kind (`''` for a member set before
    its kind was dated). Order ids hold no `/`."""
    order_id, _, deadline_ms = claimed_order_id.partition("/")
    return order_id, deadline_ms


def _order_of(member: str) -> tuple[str, str]:
    # The client id holds no `/` (`contracts.base.ClientIdentifier`): the first one separates the two.
    client_id, _, order_id = member.partition("/")
    return client_id, order_id
