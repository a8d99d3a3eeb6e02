"""Delivery queues in Redis, with leases, retries and dead letters: per endpoint, one queue per order for its
status events, in sequence, and one queue per command rejection, which has no order to keep."""

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from redis.asyncio import Redis

from contracts.events import CommandRejected, EndpointStateChanged, OrderStatusChanged
from service.clock import to_epoch_ms as ms
from service.store.keys import (
    webhook_attempts_key,
    webhook_bodies_key,
    webhook_dead_key,
    webhook_done_at_key,
    webhook_done_key,
    webhook_due_key,
    webhook_endpoint_key,
    webhook_pending_key,
    webhook_settled_key,
    webhook_tries_key,
)
from service.store.scripts import Call, Coalesced, LuaScript
from service.store.webhook_due_index import DueIndex

REJECTION_QUEUE_PREFIX = "!rejection/"
"""Queue ids of rejections: `!` is in no identifier (`contracts.base.Identifier`), so none is an order id."""


def rejection_queue(event_id: str) -> str:
    """The id of the queue that holds one command rejection: its own, so that it neither waits for an
    order's status events nor holds them back."""
    return f"{REJECTION_QUEUE_PREFIX}{event_id}"


def _is_single(queue_id: str) -> bool:
    return queue_id.startswith(REJECTION_QUEUE_PREFIX)


@dataclass(frozen=True, kw_only=True)
class QueuedEvent:
    """An event to deliver to one endpoint: a status event (with its sequence), or a command rejection."""

    endpoint_id: str
    order_id: str
    event_id: str
    sequence: int | None
    """None for a command rejection: it has no per-order sequence."""
    body: bytes
    traceparent: str | None = None
    """The trace context of the span that queued it (tracing on): its webhook request continues that trace."""

    @classmethod
    def of(
        cls,
        endpoint_id: str,
        event: OrderStatusChanged | CommandRejected | EndpointStateChanged,
        body: bytes,
        traceparent: str | None = None,
    ) -> "QueuedEvent":
        """`event` (published as `body`) for one endpoint: a status event in its order's queue, anything
        else in a queue of its own."""
        return cls(
            endpoint_id=endpoint_id,
            order_id=getattr(event, "order_id", ""),
            event_id=event.event_id,
            sequence=event.sequence if isinstance(event, OrderStatusChanged) else None,
            body=body,
            traceparent=traceparent,
        )

    def stored_body(self) -> bytes:
        """The body as queued: a JSON object, after the traceparent and a newline if it has one."""
        return self.body if self.traceparent is None else b"%s\n%s" % (self.traceparent.encode(), self.body)

    @property
    def queue_id(self) -> str:
        """The queue it waits in: its order's, or for a rejection one of its own."""
        return self.order_id if self.sequence is not None else rejection_queue(self.event_id)


@dataclass(frozen=True)
class Claim:
    """The right to attempt the next event of one queue at one endpoint, until `lease_ms`."""

    endpoint_id: str
    queue_id: str
    lease_ms: int


@dataclass(frozen=True)
class Head:
    """The event a claim is for, with the attempts made on it so far."""

    event: QueuedEvent
    attempts: list[dict[str, Any]]
    config: "StoredConfig | None" = None
    """The endpoint's configuration, if the version the caller gave is not the stored one."""


@dataclass(frozen=True)
class StoredConfig:
    """An endpoint's stored configuration (None: the endpoint is gone) and its version."""

    version: str
    config: bytes | None


@dataclass(frozen=True)
class EndpointClaims:
    """What claiming at one endpoint found."""

    claims: list[Claim]
    next_due_ms: int | None
    """When the endpoint is due next (after its pause, if paused), or None if nothing is queued."""
    stale: StoredConfig | None
    """The stored configuration, if the caller's version was not the stored one (then nothing is claimed)."""
    paused_until_ms: int | None
    heads: list[Head | None] = field(default_factory=list)
    """The head of each claimed queue (None: empty), with `claims`, when the claim was asked for them."""


@dataclass(frozen=True)
class Settled:
    """The endpoint's circuit breaker after a settle."""

    failures: int
    failing_since_ms: int | None
    kept: "tuple[Claim, Head] | None" = None
    """The queue's next event and the claim on it, if the settle kept the queue leased (see `settle`)."""


Outcome = Literal["delivered", "retry", "dead", "hold"]


def _enqueue_keys(endpoint_id: str, queue_id: str) -> list[str]:
    """KEYS of `enqueue_delivery.lua`."""
    return [
        webhook_pending_key(endpoint_id, queue_id),
        webhook_bodies_key(endpoint_id),
        webhook_due_key(endpoint_id),
        webhook_done_key(endpoint_id),
        webhook_settled_key(endpoint_id),
    ]


def _settle_keys(endpoint_id: str, queue_id: str) -> list[str]:
    """KEYS of `settle_delivery.lua`."""
    pending_prefix, *others = _endpoint_settle_keys(endpoint_id)
    return [pending_prefix + queue_id, *others]


@functools.lru_cache(maxsize=4096)
def _endpoint_settle_keys(endpoint_id: str) -> tuple[str, ...]:
    """The prefix of the endpoint's pending keys, then the endpoint's KEYS of `settle_delivery.lua`: built
    once per endpoint rather than nine f-strings per settle (the cache is bounded: endpoints come and go)."""
    return (
        webhook_pending_key(endpoint_id, ""),
        webhook_bodies_key(endpoint_id),
        webhook_due_key(endpoint_id),
        webhook_done_key(endpoint_id),
        webhook_tries_key(endpoint_id),
        webhook_dead_key(endpoint_id),
        webhook_endpoint_key(endpoint_id),
        webhook_attempts_key(endpoint_id),
        webhook_settled_key(endpoint_id),
        webhook_done_at_key(endpoint_id),
    )


def _unit(queue_id: str) -> str:
    """How the scripts settle a queue: an order's by sequence, a rejection's as a single event."""
    return "single" if _is_single(queue_id) else "order"


class DeliveryStore:
    """Every operation is one atomic step on one endpoint's keys (one hash tag), batched per call.

    `settled_memory_seconds`: how long a delivered or dead rejection is remembered, so that reading its topic
    again does not queue it twice; at least the topics' retention (the idempotency retention is).
    `done_memory_seconds`: how long an order's last settled sequence is remembered after its last settle,
    for the same purpose; the order retention, which is at least the idempotency retention.
    """

    def __init__(
        self,
        redis: "Redis",
        settled_memory_seconds: int = 7 * 24 * 3600,
        done_memory_seconds: int = 30 * 24 * 3600,
    ) -> None:
        self._redis = redis
        self._settled_memory_ms = settled_memory_seconds * 1000
        self._done_memory_ms = done_memory_seconds * 1000
        self.index = DueIndex(redis)
        self._enqueue = LuaScript("enqueue_delivery")
        self._claim = LuaScript("claim_deliveries")
        self._head = LuaScript("delivery_head")
        # Attempts finish one by one; their settles share round trips.
        self._settle = Coalesced(LuaScript("settle_delivery"), redis)

    async def enqueue(self, events: Sequence[QueuedEvent], now: datetime) -> None:
        """Queue events (ignoring those settled before); one round trip."""
        calls: list[Call] = [
            (
                _enqueue_keys(e.endpoint_id, e.queue_id),
                [e.event_id, e.sequence or 0, e.stored_body(), e.queue_id, ms(now), _unit(e.queue_id)],
            )
            for e in events
        ]
        queued = await self._enqueue.run_many(self._redis, calls)
        # After the atomic steps: the due index learns of the queues (see service.store.webhook_due_index).
        await self.index.touch(
            {e.endpoint_id: ms(now) for e, q in zip(events, queued, strict=True) if q}.items()
        )

    async def claim(self, limits: dict[str, int], now: datetime, lease_seconds: float) -> list[Claim]:
        """Due queues of each endpoint, at most its limit, leased to the caller; one round trip."""
        found = await self.claim_checked(
            {e: (limit, None) for e, limit in limits.items()}, now, lease_seconds
        )
        return [claim for claims in found.values() for claim in claims.claims]

    async def claim_checked(
        self,
        requests: dict[str, tuple[int, str | None]],
        now: datetime,
        lease_seconds: float,
        *,
        with_heads: bool = False,
    ) -> dict[str, EndpointClaims]:
        """For each endpoint (at most this many, if the caller holds this configuration version; None:
        whatever the version), its due queues leased to the caller, unless its breaker holds it back; with
        when it is due next, and with `with_heads` each claimed queue's head (as `heads` returns it, but
        without the configuration: a claim is only made with the stored version). One round trip."""
        lease_ms = ms(now) + int(lease_seconds * 1000)
        calls: list[Call] = []
        for endpoint_id, (limit, version) in requests.items():
            prefix = webhook_pending_key(endpoint_id, "") if with_heads else ""
            args: list[bytes | str | int] = [ms(now), int(lease_seconds * 1000), limit, prefix]
            keys = [
                webhook_due_key(endpoint_id),
                webhook_endpoint_key(endpoint_id),
                webhook_bodies_key(endpoint_id),
                webhook_tries_key(endpoint_id),
            ]
            calls.append((keys, args if version is None else [*args, version]))
        replies = await self._claim.run_many(self._redis, calls)
        found: dict[str, EndpointClaims] = {}
        for endpoint_id, reply in zip(requests, replies, strict=True):
            members, earliest, version, config, _, paused_until, heads = reply
            claims = [Claim(endpoint_id, member.decode(), lease_ms) for member in members]
            found[endpoint_id] = EndpointClaims(
                claims=claims,
                heads=[
                    _head_of(claim, [*head, version, None]) if head else None
                    for claim, head in zip(claims, heads, strict=True)
                ]
                if with_heads
                else [],
                next_due_ms=None if earliest is None else int(earliest),
                stale=None
                if requests[endpoint_id][1] in (None, version.decode())
                else StoredConfig(version.decode(), config),
                paused_until_ms=int(paused_until) if paused_until else None,
            )
        return found

    async def head(self, claim: Claim) -> Head | None:
        """The earliest queued event of the claimed queue, or None if it is empty."""
        [head] = await self.heads([claim])
        return head

    async def heads(
        self, claims: Sequence[Claim], versions: dict[str, str] | None = None
    ) -> list[Head | None]:
        """`head` of each claim, all in one round trip (a worker fetches those of a whole round at once); with
        the endpoint's configuration where `versions` (endpoint id → version held) is not the stored one."""
        versions = versions or {}
        calls: list[Call] = [
            (
                [
                    webhook_pending_key(c.endpoint_id, c.queue_id),
                    webhook_bodies_key(c.endpoint_id),
                    webhook_tries_key(c.endpoint_id),
                    webhook_endpoint_key(c.endpoint_id),
                ],
                [versions.get(c.endpoint_id, "")],
            )
            for c in claims
        ]
        replies = await self._head.run_many(self._redis, calls)
        return [_head_of(c, reply) if reply else None for c, reply in zip(claims, replies, strict=True)]

    async def settle(
        self,
        claim: Claim,
        head: Head,
        outcome: Outcome,
        now: datetime,
        next_attempt: datetime | None,
        attempt: dict[str, Any] | None,
        breaker: tuple[int, float],
        log_length: int,
        *,
        keep_lease_seconds: float | None = None,
        version: str = "",
    ) -> Settled | None:
        """Record an attempt and its outcome; returns the endpoint's breaker after it, or None if the lease
        was lost meanwhile (the outcome is then dropped: another worker owns the queue).

        `keep_lease_seconds`: if the event was delivered, keep a queue leased to the caller for that long
        and return its next event (`Settled.kept`), with the endpoint's configuration if `version` is not
        the stored one, as `heads` does: this queue if it has more, else the endpoint's earliest due
        queue, if one is due. The caller attempts it next, in the slot the delivery used."""
        attempts = head.attempts + ([attempt] if attempt else [])
        dead = (
            json.dumps({"event": json.loads(head.event.body), "attempts": attempts})
            if outcome == "dead"
            else ""
        )
        fields: list[str | int | bytes] = []
        for name, value in (attempt or {}).items():
            fields += [name, "" if value is None else str(value)]
        keys = _endpoint_settle_keys(claim.endpoint_id)
        args: list[str | int | bytes] = [
            claim.queue_id,
            head.event.event_id,
            head.event.sequence or 0,
            outcome,
            claim.lease_ms,
            ms(next_attempt or now),
            # Only a retry stores the attempts (the next try reads them); the script ignores them otherwise.
            json.dumps(attempts) if outcome == "retry" else "",
            dead,
            ms(now),
            breaker[0],
            int(breaker[1] * 1000),
            log_length,
            _unit(claim.queue_id),
            self._settled_memory_ms,
            self._done_memory_ms,
            "" if keep_lease_seconds is None else int(keep_lease_seconds * 1000),
            version,
            keys[0],
            *fields,
        ]
        result = await self._settle.run(_settle_keys(claim.endpoint_id, claim.queue_id), args)
        if result == b"lost":
            return None
        failures, failing_since, earliest = result[:3]
        settled = Settled(int(failures), int(failing_since) if failing_since else None)
        if len(result) > 3:  # kept: nothing became due, so the index needs no touch
            lease, head_reply, queue_id = result[3:]
            next_claim = Claim(claim.endpoint_id, queue_id.decode(), int(lease))
            return Settled(
                settled.failures, settled.failing_since_ms, (next_claim, _head_of(next_claim, head_reply))
            )
        if earliest is not None:  # after the atomic step, as every write of the index
            await self.index.touch([(claim.endpoint_id, int(float(earliest)))])
        return settled

    async def dead(self, endpoint_id: str) -> dict[str, dict[str, Any]]:
        """Deliveries given up on: event id → the event and every attempt."""
        raw: dict[bytes, bytes] = await self._redis.hgetall(webhook_dead_key(endpoint_id))  # type: ignore[assignment]
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    async def replay(self, endpoint_id: str, event_ids: Sequence[str], now: datetime) -> int:
        """Queue dead deliveries again (status events in their original sequence order per order, each
        rejection in its own queue again); returns how many."""
        dead = await self.dead(endpoint_id)
        chosen = [(event_id, dead[event_id]["event"]) for event_id in event_ids if event_id in dead]
        # One transaction: a queue is never left without its id in `due`, which indexes the queues.
        async with self._redis.pipeline(transaction=True) as pipe:
            for event_id, event in chosen:
                # Only status events have an order's queue; a rejection or an endpoint's state change has
                # its own, as `QueuedEvent.of` queued it.
                single = event.get("type") != "order_status_changed"
                queue_id = rejection_queue(event_id) if single else event["order_id"]
                sequence = 0 if single else event["sequence"]
                pipe.zadd(webhook_pending_key(endpoint_id, queue_id), {event_id: sequence})
                pipe.hset(webhook_bodies_key(endpoint_id), event_id, json.dumps(event))
                pipe.zadd(webhook_due_key(endpoint_id), {queue_id: ms(now)}, nx=True)
                pipe.hdel(webhook_dead_key(endpoint_id), event_id)
            await pipe.execute()
        if chosen:
            await self.index.touch([(endpoint_id, ms(now))])
        return len(chosen)

    async def replay_since(self, endpoint_id: str, since: datetime, now: datetime) -> int:
        """Queue again every delivery of the endpoint that died (its last attempt) at or after `since`."""
        dead = await self.dead(endpoint_id)
        chosen = [e for e, r in dead.items() if datetime.fromisoformat(r["attempts"][-1]["at"]) >= since]
        return await self.replay(endpoint_id, chosen, now)

    async def attempts(
        self, endpoint_id: str, count: int = 100, event_id: str | None = None
    ) -> list[dict[str, str]]:
        """The newest attempts at an endpoint, newest first; only those of `event_id` if given."""
        stream = webhook_attempts_key(endpoint_id)
        entries: list[tuple[bytes, dict[bytes, bytes]]] = await self._redis.xrevrange(  # type: ignore[assignment]
            stream, count=None if event_id else count
        )
        records = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]
        if event_id is not None:
            records = [r for r in records if r.get("event_id") == event_id][:count]
        return records

    async def backlogs(self, endpoint_ids: Sequence[str]) -> dict[str, int]:
        """Queues with deliveries waiting (orders, and single rejections), per endpoint; one round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for endpoint_id in endpoint_ids:
                pipe.zcard(webhook_due_key(endpoint_id))
            counts = await pipe.execute()
        return {endpoint_id: int(n) for endpoint_id, n in zip(endpoint_ids, counts, strict=True)}


def _traced_body(stored: bytes | None) -> tuple[str | None, bytes | None]:
    """The traceparent and the event of a body as `QueuedEvent.stored_body` queued it."""
    if not stored or stored[:1] == b"{":
        return None, stored
    traceparent, _, body = stored.partition(b"\n")
    return traceparent.decode("ascii", "replace"), body


def _head_of(claim: Claim, reply: list[Any]) -> Head:
    """A head from a reply of `delivery_head.lua` (or a settle that kept its queue)."""
    event_id, sequence, stored_body, tries, version, config = reply
    single = _is_single(claim.queue_id)
    traceparent, body = _traced_body(stored_body)
    event = QueuedEvent(
        endpoint_id=claim.endpoint_id,
        order_id=_order_of(body) if single else claim.queue_id,
        event_id=event_id.decode(),
        sequence=None if single else int(sequence),
        body=body or b"{}",
        traceparent=traceparent,
    )
    stored = StoredConfig(version.decode(), config) if config is not None else None
    return Head(event, json.loads(tries) if tries else [], stored)


def _order_of(body: bytes | None) -> str:
    """The order a queued rejection names (its queue id does not say)."""
    try:
        return str(json.loads(body or b"{}").get("order_id", ""))
    except ValueError:
        return ""
