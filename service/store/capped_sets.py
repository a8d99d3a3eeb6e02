"""Per-client caps on what a client registers (webhook endpoints, API keys), enforced by Redis.

A registration writes its record first, with a short expiry, then asks to join the client's capped set;
only once admitted does the record lose its expiry. A crash between two of these steps leaves a record that
expires, or a member whose record is gone: members without a live record are dropped when the set is found
full, so that neither kind of leftover ever counts against the client.
"""

from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from service.store.scripts import LuaScript

PROVISIONAL_MS = 60_000
"""How long a record written before its admission lives unless admitted."""

_ADMIT = LuaScript("admit_member")

LiveCheck = Callable[[list[str]], Awaitable[list[bool]]]
"""Whether each member (in order) still has a live record: an existing endpoint, an unrevoked key."""


class LimitReached(Exception):
    """The client has as many of these as it may have."""

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(f"a client may have at most {limit} {what}")
        self.limit = limit


async def admit(redis: "Redis", set_key: str, member: str, limit: int, is_live: LiveCheck) -> bool:
    """Add `member` to the set at `set_key` unless it holds `limit` members already; a full set is first
    cleared of members without a live record, and asked once more."""
    if await _ADMIT.run(redis, [set_key], [member, limit]):
        return True
    stored: set[bytes] = await redis.smembers(set_key)  # type: ignore[assignment]
    members = sorted(m.decode() for m in stored)
    stale = [m for m, live in zip(members, await is_live(members), strict=True) if not live]
    if not stale:
        return False
    await redis.srem(set_key, *stale)
    return bool(await _ADMIT.run(redis, [set_key], [member, limit]))
