"""The due index: which webhook endpoints may have a delivery due, and from when, so that the delivery loop
reads only those (its cost follows what is due, not how many endpoints are registered).

Every endpoint's queues live in the endpoint's own slot (`{<endpoint_id>}`), and the index in another
(`{due}`), so no Lua script can change both at once, on Redis Cluster or anywhere. The index is kept safe
without that:

- **Lowering after the step.** Whatever makes a queue due (queuing, settling a retry or a delivery with
  more queued, a hold, a replay, enabling an endpoint) first takes its atomic step on the endpoint's keys,
  then lowers the endpoint's entry here (`touch`: ZADD LT, never later). Each touch also gives the entry a
  new mark from a counter that never repeats.
- **Raising only if untouched.** A worker reads due entries with their marks (`due`), claims on the
  endpoints (whose script says when each is due next), then moves each entry to that time or removes it
  (`revise`), but only where the mark is still the one it read. A touch after the claim's atomic step, which
  the claim may not have seen, changed the mark: that entry keeps the touch's time. A touch before the claim
  was seen by it. So an entry is never later than its endpoint's earliest due queue, except
- **a writer that crashed between its step and its touch.** Its entry may be late or missing; the sweep
  (`sweep`, every `ORDERS_RELAY_SWEEP_SECONDS` and at each worker's start) touches every endpoint with its
  earliest due queue, which bounds that delay and also fills the index for queues made before it existed.

An entry earlier than the truth (a leased queue, a paused or disabled endpoint) costs one claim that finds
nothing and revises the entry. Entries are bounded by the endpoints with queued deliveries.
"""

from collections.abc import Iterable, Sequence
from datetime import datetime

from redis.asyncio import Redis

from service.clock import to_epoch_ms as ms
from service.store.keys import (
    WEBHOOK_DUE_INDEX,
    WEBHOOK_DUE_MARKS,
    WEBHOOK_DUE_WRITES,
    webhook_due_key,
)
from service.store.scripts import Coalesced, LuaScript

_KEYS = [WEBHOOK_DUE_INDEX, WEBHOOK_DUE_MARKS]


class DueIndex:
    """Reads and writes of the due index (one round trip each; touches of concurrent callers coalesce)."""

    def __init__(self, redis: "Redis") -> None:
        self._redis = redis
        self._touch = Coalesced(LuaScript("touch_due_endpoints"), redis)
        self._due = LuaScript("due_endpoints")
        self._revise = LuaScript("revise_due_endpoints")

    async def touch(self, due: Iterable[tuple[str, int]]) -> None:
        """After an atomic step that made something of each endpoint due at the given epoch ms."""
        args: list[str | int | bytes] = [part for endpoint_id, at in due for part in (endpoint_id, at)]
        if args:
            await self._touch.run([*_KEYS, WEBHOOK_DUE_WRITES], args)

    async def due(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        """Up to `limit` endpoints whose entry has come, each with the mark it was read with."""
        found: list[bytes] = await self._due.run(self._redis, _KEYS, [ms(now), limit])
        return [(found[i].decode(), found[i + 1].decode()) for i in range(0, len(found), 2)]

    async def revise(self, revisions: Sequence[tuple[str, str, int | None]]) -> None:
        """Move each (endpoint, mark read, next due ms or None: remove) entry, unless touched since read."""
        args: list[str | int | bytes] = []
        for endpoint_id, mark, at in revisions:
            args += [endpoint_id, mark, "" if at is None else at]
        if args:
            await self._revise.run(self._redis, _KEYS, args)

    async def remove(self, endpoint_id: str) -> None:
        """Drop a deleted endpoint's entry (a late touch re-adds it; the next claim then removes it)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(WEBHOOK_DUE_INDEX, endpoint_id)
            pipe.hdel(WEBHOOK_DUE_MARKS, endpoint_id)
            await pipe.execute()

    async def sweep(self, endpoint_ids: Sequence[str], batch: int = 1000) -> int:
        """Touch every endpoint that has a queue with its earliest due time; returns how many have one."""
        found = 0
        for start in range(0, len(endpoint_ids), batch):
            chosen = endpoint_ids[start : start + batch]
            async with self._redis.pipeline(transaction=False) as pipe:
                for endpoint_id in chosen:
                    pipe.zrange(webhook_due_key(endpoint_id), 0, 0, withscores=True)
                firsts = await pipe.execute()
            due = [(e, int(first[0][1])) for e, first in zip(chosen, firsts, strict=True) if first]
            await self.touch(due)
            found += len(due)
        return found
