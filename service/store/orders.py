"""The order repository: batched reads, atomic transitions through Lua, and the per-order outbox."""

from collections.abc import Iterable, Sequence
from typing import Literal, NamedTuple

import msgspec
from redis.asyncio import Redis

from service.clock import to_epoch_ms
from service.domain.local_effects import IndexOrder
from service.domain.order import Order
from service.store.keys import (
    ANOMALIES,
    client_orders_key,
    command_claim_key,
    history_key,
    inputs_key,
    order_key,
    order_keys,
    outbox_key,
)
from service.store.outbox import OutboxEntry, PendingEntry
from service.store.raw_pipeline import RawPipeline, hash_items
from service.store.scripts import Call, LuaScript

ANOMALY_LOG_LENGTH = 10_000


class OrderId(NamedTuple):
    """An order's identity: order ids are scoped per client, so two clients may use the same one."""

    client_id: str
    order_id: str


class OrderSnapshot(msgspec.Struct):
    """One order as read at the start of a batch, with its unpublished outbox."""

    order: Order | None
    version: str
    outbox: list[PendingEntry]


class CommandClaim(NamedTuple):
    """A command's hold on its `command_id` among all its client's commands, by its payload's fingerprint."""

    client_id: str
    command_id: str
    fingerprint: str


class Transition(msgspec.Struct, kw_only=True):
    """One input's effect on one order, ready for `commit_transition.lua`."""

    client_id: str
    order_id: str
    input_id: str
    fingerprint: str
    expected_version: str
    new_state: bytes | None
    """The new state, or None to keep the stored one (and its version)."""
    entries: list[OutboxEntry] = msgspec.field(default_factory=list)
    expires_at_ms: int | None = None
    """When the order's keys expire (epoch ms; 0: never), or None to leave their expiry as it is."""


class CommitResult(msgspec.Struct, frozen=True):
    """What Redis said about one transition."""

    outcome: Literal["ok", "duplicate", "conflict"]
    detail: str
    """duplicate: the stored fingerprint; conflict: the current version; ok: ''."""
    stored: list[PendingEntry] = msgspec.field(default_factory=list)
    """ok: the transition's outbox entries, under the numbers the script stored them at."""


class OrderStore:
    """All reads and writes of order state; every method is one Redis round trip for a whole batch."""

    def __init__(self, redis: "Redis", index_retention_seconds: int = 400 * 24 * 3600) -> None:
        self._redis = redis
        self._index_retention_ms = index_retention_seconds * 1000
        self._commit = LuaScript("commit_transition")

    async def load_scripts(self) -> None:
        """Load the Lua scripts up front, so a first batch pays no extra round trip."""
        await self._commit.load(self._redis)

    async def load(
        self,
        order_ids: Iterable[OrderId],
        input_ids: Sequence[tuple[OrderId, str]],
        claims: Sequence[CommandClaim] = (),
        claim_seconds: int = 7 * 24 * 3600,
    ) -> tuple[dict[OrderId, OrderSnapshot], dict[str, bytes], list[bytes]]:
        """Snapshots of `order_ids`, the fingerprints of those `(order_id, input_id)` already applied, and
        for each claim the fingerprint that holds its command_id (this one's, if none held it; a claim
        lasts `claim_seconds`)."""
        orders = list(dict.fromkeys(order_ids))
        pipe = RawPipeline(self._redis)
        for ref in orders:
            key = order_key(*ref)
            pipe.command(key, "HMGET", key, "state", "version")
            key = outbox_key(*ref)
            pipe.command(key, "HGETALL", key)
        for ref, input_id in input_ids:
            key = inputs_key(*ref)
            pipe.command(key, "HGET", key, input_id)
        claim_keys = [command_claim_key(claim.client_id, claim.command_id) for claim in claims]
        for key, claim in zip(claim_keys, claims, strict=True):
            pipe.command(key, "SET", key, claim.fingerprint, "NX", "EX", claim_seconds)
        replies = await pipe.execute()
        taken = replies[2 * len(orders) + len(input_ids) :]
        replies = replies[: 2 * len(orders) + len(input_ids)]
        claimed = await self._claim_holders(claims, claim_keys, taken, claim_seconds)
        snapshots = {}
        for n, ref in enumerate(orders):
            (state, version), outbox = replies[2 * n], replies[2 * n + 1]
            snapshots[ref] = OrderSnapshot(
                order=Order.from_json(state) if state else None,
                version=version.decode() if version else "",
                outbox=[
                    PendingEntry(ref.client_id, ref.order_id, number, OutboxEntry.decode(raw, ref.client_id))
                    for number, raw in sorted(hash_items(outbox))
                ],
            )
        applied = {
            input_id: fingerprint
            for (_, input_id), fingerprint in zip(input_ids, replies[2 * len(orders) :], strict=True)
            if fingerprint is not None
        }
        return snapshots, applied, claimed

    async def _claim_holders(
        self,
        claims: Sequence[CommandClaim],
        keys: Sequence[str],
        taken: Sequence[bytes | None],
        claim_seconds: int,
    ) -> list[bytes]:
        """The fingerprint holding each claim, from the replies of its `SET NX` (`b"OK"`: this one's).

        Almost every command is new, and then its `SET NX` says all there is to know: a `GET` sent beside
        each one was one command in 14 of an order's. Only the claims found held are read, in a second round
        trip, by `SET NX` and `GET` again: a claim that expired in between is taken, not read as None."""
        holders = [
            claim.fingerprint.encode() if ok is not None else b""
            for claim, ok in zip(claims, taken, strict=True)
        ]
        held = [n for n, ok in enumerate(taken) if ok is None]
        if held:
            pipe = RawPipeline(self._redis)
            for n in held:
                pipe.command(keys[n], "SET", keys[n], claims[n].fingerprint, "NX", "EX", claim_seconds)
                pipe.command(keys[n], "GET", keys[n])
            for n, holder in zip(held, (await pipe.execute())[1::2], strict=True):
                holders[n] = holder
        return holders

    async def commit(self, transitions: Sequence[Transition]) -> list[CommitResult]:
        """Apply the transitions in order, each atomically; one round trip for all of them."""
        calls: list[Call] = []
        for t in transitions:
            args: list[bytes | str | int] = [
                t.input_id,
                t.fingerprint,
                t.expected_version,
                t.new_state or b"",
                t.input_id,
                "" if t.expires_at_ms is None else t.expires_at_ms,
            ]
            args += [entry.encode() for entry in t.entries]
            calls.append((order_keys(t.client_id, t.order_id), args))
        replies = await self._commit.run_many(self._redis, calls)
        return [_commit_result(t, reply) for t, reply in zip(transitions, replies, strict=True)]

    async def acknowledge(self, published: Iterable[PendingEntry]) -> None:
        """Drop published entries from their outboxes."""
        by_order: dict[tuple[str, str], list[bytes]] = {}
        for pending in published:
            by_order.setdefault((pending.client_id, pending.order_id), []).append(pending.number)
        pipe = RawPipeline(self._redis)
        for (client_id, order_id), numbers in by_order.items():
            key = outbox_key(client_id, order_id)
            pipe.command(key, "HDEL", key, *numbers)
        await pipe.execute()

    async def get(self, client_id: str, order_id: str) -> Order | None:
        """The client's stored order, or None: another client's order under the same id is never read."""
        state: bytes | None = await self._redis.hget(order_key(client_id, order_id), "state")  # type: ignore[assignment]
        return Order.from_json(state) if state else None

    async def history(
        self, client_id: str, order_id: str, *, start: int, count: int
    ) -> tuple[bool, list[bytes]]:
        """Whether the client has the order, and its status events from position `start` (0 the first), at
        most `count`, as they were published. One round trip; another client's order is never read."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(order_key(client_id, order_id))
            pipe.lrange(history_key(client_id, order_id), start, start + count - 1)
            exists, events = await pipe.execute()
        return bool(exists), list(events) if exists else []

    async def record_anomalies(self, anomalies: Sequence[tuple[str, str, str, str]]) -> None:
        """Append `(client_id, order_id, input_id, anomaly)` records to the capped anomaly stream."""
        pipe = RawPipeline(self._redis)
        for client_id, order_id, input_id, anomaly in anomalies:
            fields = ("client_id", client_id, "order_id", order_id, "input_id", input_id, "anomaly", anomaly)
            pipe.command(ANOMALIES, "XADD", ANOMALIES, "MAXLEN", "~", ANOMALY_LOG_LENGTH, "*", *fields)
        await pipe.execute()

    def pipeline(self) -> RawPipeline:
        """A pipeline on the store's client, for steps that queue several stores' commands (`LocalEffects`):
        one round trip for all of them."""
        return RawPipeline(self._redis)

    async def recent_anomalies(self, count: int = 100) -> list[dict[str, str]]:
        """The newest anomaly records, newest first."""
        entries: list[tuple[bytes, dict[bytes, bytes]]] = await self._redis.xrevrange(ANOMALIES, count=count)  # type: ignore[assignment]
        return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]

    async def index(self, entries: Sequence[IndexOrder]) -> None:
        """List new orders under their clients (idempotent: a replay sets the same score), and drop the
        entries older than the index retention, which bounds each listing."""
        pipe = RawPipeline(self._redis)
        self.queue_index(pipe, entries)
        await pipe.execute()

    def queue_index(self, pipe: RawPipeline, entries: Sequence[IndexOrder]) -> None:
        """`index`, queued on `pipe`."""
        newest: dict[str, int] = {}
        for e in entries:
            created_ms, key = to_epoch_ms(e.created_at), client_orders_key(e.client_id)
            pipe.command(key, "ZADD", key, created_ms, e.order_id)
            newest[e.client_id] = max(newest.get(e.client_id, 0), created_ms)
        for client_id, created_ms in newest.items():
            key = client_orders_key(client_id)
            pipe.command(key, "ZREMRANGEBYSCORE", key, "-inf", created_ms - self._index_retention_ms)

    async def page(
        self,
        client_id: str,
        before: tuple[int, str] | None,
        since_ms: int | None,
        until_ms: int | None,
        count: int,
    ) -> list[tuple[int, Order]]:
        """Up to `count` of a client's orders created in [since_ms, until_ms], newest first, each with its
        creation time (ms), strictly after the `(created_ms, order_id)` cursor of a previous page."""
        key = client_orders_key(client_id)
        low: str | int = since_ms if since_ms is not None else "-inf"
        high: str | int = f"({before[0]}" if before else (until_ms if until_ms is not None else "+inf")
        raw: list[tuple[bytes, float]] = await self._redis.zrevrangebyscore(  # type: ignore[assignment]
            key, high, low, start=0, num=count, withscores=True
        )
        if before is not None:
            # Orders of the cursor's own millisecond that sort after it were cut off by the exclusive bound.
            same: list[bytes] = await self._redis.zrevrangebyscore(key, before[0], before[0])  # type: ignore[assignment]
            raw = [(m, float(before[0])) for m in same if m.decode() < before[1]] + raw
        chosen = raw[:count]
        async with self._redis.pipeline(transaction=False) as pipe:
            for member, _ in chosen:
                pipe.hget(order_key(client_id, member.decode()), "state")
            states = await pipe.execute()
        return [
            (int(score), Order.from_json(state))
            for (_, score), state in zip(chosen, states, strict=True)
            if state
        ]


def _commit_result(transition: Transition, reply: list[bytes]) -> CommitResult:
    """`commit_transition.lua`'s reply: the outcome, then the entry numbers or the detail."""
    outcome, *rest = reply
    if outcome == b"ok":
        numbers = zip(rest, transition.entries, strict=True)
        stored = [PendingEntry(transition.client_id, transition.order_id, n, e) for n, e in numbers]
        return CommitResult("ok", "", stored)
    return CommitResult("duplicate" if outcome == b"duplicate" else "conflict", rest[0].decode())
