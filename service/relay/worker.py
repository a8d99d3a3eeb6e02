"""The delivery loop: claim due queues at the endpoints the due index names, attempt their next event, settle
the outcome."""

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from service import metrics
from service.clock import from_epoch_ms
from service.config import RelaySettings
from service.relay.announcements import announce_state_change
from service.relay.safety import UnsafeTarget, check_target
from service.relay.sender import AttemptResult, HttpClient, attempt_deadline, lease_seconds, post_event
from service.store.webhook_deliveries import (
    Claim,
    DeliveryStore,
    EndpointClaims,
    Head,
    Outcome,
    Settled,
    StoredConfig,
)
from service.store.webhook_endpoints import Endpoint, EndpointState, EndpointStore

log = logging.getLogger(__name__)


class _Occurred(msgspec.Struct):
    """The one field of a delivered event the delivery lag needs (msgspec skips the rest of the body)."""

    occurred_at: datetime | None = None


_OCCURRED = msgspec.json.Decoder(_Occurred)
_HEADERS = msgspec.json.Encoder()

FOLLOW_LIMIT = 32
"""Attempts one slot makes in a row, over all its queues (the next event of a kept queue, or another due
queue claimed at once) before it goes back to the rounds, so that a client's other endpoints get their turn
at its slots."""

LANES_PER_SLOT = 2
"""Queues one slot holds at most, attempted in turn: one queue's settle (a Redis round trip) runs while the
other's request is in flight, instead of the slot's next request waiting for it. Still one request per slot
at a time (the concurrency caps count requests), and one event per queue: a queue's next event is attempted
only once its previous one is settled."""

# Looked up once, not at each attempt.
_ATTEMPTED = metrics.WEBHOOK_ATTEMPTS.labels("delivered")
_FAILED = metrics.WEBHOOK_ATTEMPTS.labels("failed")
_DELIVERED = metrics.WEBHOOK_DELIVERED

Kept = tuple[Claim, Head]
"""A queue leased to a slot, with the next event to attempt."""

ENDPOINTS_PER_ROUND = 1000
"""Due endpoints one round reads at most; the rest come in the next round, which follows at once."""


@dataclass
class _Known:
    """An endpoint's configuration as this instance last read it, and its version (compared in Redis at each
    claim and each attempt, so a change anywhere applies to the next attempt)."""

    endpoint: Endpoint
    version: str


class DeliveryWorker:
    """Attempts run concurrently, capped per endpoint and per client: one slow or failing endpoint, or one
    client with many, only ever occupies its own slots."""

    def __init__(
        self,
        endpoints: EndpointStore,
        deliveries: DeliveryStore,
        client: HttpClient,
        settings: RelaySettings,
        clock: Callable[[], datetime],
        rng: random.Random | None = None,
    ) -> None:
        self._endpoints = endpoints
        self._deliveries = deliveries
        self._client = client
        self._settings = settings
        self._clock = clock
        self._random = rng or random.Random()
        self._allowed = settings.relay_allowed_networks
        self._lease_seconds = lease_seconds(settings.relay_timeout_seconds)
        self._in_flight: dict[str, set[asyncio.Task[None]]] = {}
        self._in_flight_by_client: dict[str, int] = {}
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        # Configurations are cached, not re-read each round: the claim and head scripts hand back the
        # stored one whenever its version is not the cached one.
        self._known: dict[str, _Known] = {}
        self._next_sweep = datetime.min.replace(tzinfo=UTC)

    async def start(self) -> None:
        """Start delivering in the background (once: a second call while it runs does nothing)."""
        if self._loop is not None and not self._loop.done():
            return
        self._stopping.clear()
        self._loop = asyncio.create_task(self._run(), name="webhook-delivery")

    async def stop(self) -> None:
        """Stop claiming and let the attempts in flight finish (their leases would expire otherwise)."""
        self._stopping.set()
        if self._loop is not None:
            await self._loop
        tasks = [t for tasks in self._in_flight.values() for t in tasks]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def wake(self) -> None:
        """Look for due deliveries now rather than at the next poll: events were queued, or a slot freed.

        The poll remains for what no wake announces: retries coming due, other instances' queuing.
        """
        self._wake.set()

    async def _run(self) -> None:
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                self._wake.clear()  # before the round: a wake during it means another round
                try:
                    await self.dispatch_due()
                    if self._clock() >= self._next_sweep:  # after the first round: a backlog goes first
                        await self.sweep()
                except Exception:
                    log.exception("relay.dispatch_failed")
                    metrics.WEBHOOK_DISPATCH_FAILURES.inc()
                woken = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait(
                    {stopping, woken},
                    timeout=self._settings.relay_poll_seconds,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                woken.cancel()
        finally:
            stopping.cancel()

    async def sweep(self) -> None:
        """The slow walk over every endpoint, at start and every `relay_sweep_seconds`: restores the due index
        (a writer may have crashed between its step and the index; see `service.store.webhook_due_index`),
        re-reads the configurations whose version changed, and updates the gauges."""
        now = self._clock()
        self._next_sweep = now + timedelta(seconds=self._settings.relay_sweep_seconds)
        endpoint_ids = await self._endpoints.all_ids()
        if await self._deliveries.index.sweep(endpoint_ids):
            self._wake.set()
        # Versions first: only the configurations that changed (or are new here) are read and parsed.
        versions = await self._endpoints.versions(endpoint_ids)
        changed = [i for i, (version, _) in versions.items() if self._version_of(i) != version]
        found = await self._endpoints.get_versioned(changed)
        known = {i: self._known[i] for i in endpoint_ids if i in self._known and i not in changed}
        known.update({i: _Known(endpoint, version) for i, (endpoint, version) in found.items()})
        for endpoint_id, (_, paused) in versions.items():
            if endpoint_id in known:
                known[endpoint_id].endpoint.paused_until = from_epoch_ms(paused) if paused else None
        self._known = known
        registered = [k.endpoint for k in known.values()]
        backlogs = await self._deliveries.backlogs([e.endpoint_id for e in registered])
        for state in EndpointState:
            chosen = [e for e in registered if e.effective_state(now) is state]
            metrics.WEBHOOK_ENDPOINTS.labels(state.value).set(len(chosen))
            metrics.WEBHOOK_BACKLOG.labels(state.value).set(sum(backlogs[e.endpoint_id] for e in chosen))

    async def dispatch_due(self) -> int:
        """Claim what is due at the endpoints the due index names, within the free slots of each endpoint and
        its client, and start attempts; returns how many started."""
        now = self._clock()
        due = await self._deliveries.index.due(now, ENDPOINTS_PER_ROUND)
        if not due:
            return 0
        if len(due) == ENDPOINTS_PER_ROUND:
            self._wake.set()  # more may be due: the next round follows this one at once
        unknown = [endpoint_id for endpoint_id, _ in due if endpoint_id not in self._known]
        if unknown:
            for endpoint_id, (endpoint, version) in (await self._endpoints.get_versioned(unknown)).items():
                self._known[endpoint_id] = _Known(endpoint, version)
        self._random.shuffle(due)  # a client's due endpoints take turns at its slots
        free, requests = self._requests([endpoint_id for endpoint_id, _ in due])
        found = await self._deliveries.claim_checked(requests, now, self._lease_seconds, with_heads=True)
        revisions, slots = self._revisions(due, found, free)
        # The attempts first: the index's revise is not theirs to wait for (a settle that touches the index
        # before the revise lands changes the entry's mark, so the revise leaves that entry alone).
        for endpoint_id, lanes in slots:
            self._start_slot(endpoint_id, lanes)
        await self._deliveries.index.revise(revisions)
        return sum(len(lanes) for _, lanes in slots)

    def _revisions(
        self, due: list[tuple[str, str]], found: dict[str, EndpointClaims], free: dict[str, int]
    ) -> tuple[list[tuple[str, str, int | None]], list[tuple[str, list[Kept]]]]:
        """Where each due endpoint's index entry is to move after what its claim found (see
        `DueIndex.revise`), and the slots to start: each endpoint's claims with their heads, dealt out to
        as many slots as it has claims, up to its free slots (a claim of an empty queue is left to lapse)."""
        revisions: list[tuple[str, str, int | None]] = []
        slots: list[tuple[str, list[Kept]]] = []
        for endpoint_id, mark in due:
            claims = found.get(endpoint_id)
            if endpoint_id not in self._known:  # deleted: nothing of it is due any more
                revisions.append((endpoint_id, mark, None))
            elif claims is None:  # its slots, or its client's, are taken: due as it was
                continue
            elif claims.stale is not None:  # changed since cached: claim again with what is stored now
                self._learn(endpoint_id, claims.stale)
                self._wake.set()
            else:
                revisions.append((endpoint_id, mark, self._next_due(endpoint_id, claims)))
                ready = [(c, h) for c, h in zip(claims.claims, claims.heads, strict=True) if h is not None]
                # One queue a slot while there are free slots (more requests in flight), two a slot only
                # when there are more queues than that (`_requests` asked for up to that many).
                count = min(len(ready), free.get(endpoint_id, 0))
                slots += [(endpoint_id, ready[i::count]) for i in range(count)]
        return revisions, slots

    def _requests(
        self, endpoint_ids: Sequence[str]
    ) -> tuple[dict[str, int], dict[str, tuple[int, str | None]]]:
        """The free slots of each endpoint (within its client's), and how many queues to claim there (up to
        `LANES_PER_SLOT` a slot) with the version each claim is to check; 0 for an endpoint that is not
        ACTIVE (the claim still checks the version and says when it is due next); none for an ACTIVE one
        without a free slot."""
        per_endpoint = self._settings.relay_concurrency_per_endpoint
        client_free: dict[str, int] = {}
        free: dict[str, int] = {}
        requests: dict[str, tuple[int, str | None]] = {}
        for endpoint_id in endpoint_ids:
            known = self._known.get(endpoint_id)
            if known is None:
                continue
            endpoint, limit = known.endpoint, 0
            if endpoint.state is EndpointState.ACTIVE:  # a pause is for the claim script to judge
                client = endpoint.client_id
                left = client_free.setdefault(
                    client,
                    self._settings.relay_concurrency_per_client - self._in_flight_by_client.get(client, 0),
                )
                limit = max(0, min(per_endpoint - len(self._in_flight.get(endpoint_id, ())), left))
                client_free[client] = left - limit
                if not limit:
                    # No slot: no claim either, so a client whose many endpoints wait for their slots costs
                    # a round little more than reading their entries. A finished attempt wakes the loop.
                    continue
            free[endpoint_id] = limit
            requests[endpoint_id] = (limit * LANES_PER_SLOT, known.version)
        return free, requests

    def _next_due(self, endpoint_id: str, claimed: EndpointClaims) -> int | None:
        """When the due index should next name the endpoint (None: not until a write names it again)."""
        known = self._known[endpoint_id]
        paused = claimed.paused_until_ms
        known.endpoint.paused_until = from_epoch_ms(paused) if paused else None
        if known.endpoint.state is not EndpointState.ACTIVE:
            return None  # disabled: enabling it touches the index
        return claimed.next_due_ms

    def _version_of(self, endpoint_id: str) -> str | None:
        known = self._known.get(endpoint_id)
        return known.version if known is not None else None

    def _learn(self, endpoint_id: str, stored: StoredConfig) -> None:
        """Cache a configuration read from Redis, keeping the breaker's fields as last known."""
        previous = self._known.get(endpoint_id)
        if stored.config is None:
            self._known.pop(endpoint_id, None)
            return
        endpoint = self._endpoints.parse(stored.config)
        if previous is not None:
            endpoint.paused_until = previous.endpoint.paused_until
            endpoint.failing_since = previous.endpoint.failing_since
        self._known[endpoint_id] = _Known(endpoint, stored.version)

    def _start_slot(self, endpoint_id: str, lanes: list[Kept]) -> None:
        known = self._known.get(endpoint_id)
        if known is None:  # deleted meanwhile: its leases lapse with its keys
            return
        client = known.endpoint.client_id
        task = asyncio.create_task(self._slot(endpoint_id, lanes))
        tasks = self._in_flight.setdefault(endpoint_id, set())
        tasks.add(task)
        self._in_flight_by_client[client] = self._in_flight_by_client.get(client, 0) + 1

        def finished(_: asyncio.Task[None]) -> None:
            tasks.discard(task)
            if not tasks:
                self._in_flight.pop(endpoint_id, None)
            left = self._in_flight_by_client[client] - 1
            if left:
                self._in_flight_by_client[client] = left
            else:
                del self._in_flight_by_client[client]
            # A finished slot frees its place and may have made its queues' next events due.
            self._wake.set()

        task.add_done_callback(finished)

    def _note(self, endpoint_id: str, **changes: Any) -> None:
        """Apply a change this instance made to an endpoint to its cached copy, so that attempts claimed
        before the next claim sees the new version do not go to an endpoint it has just paused or disabled."""
        known = self._known.get(endpoint_id)
        if known is not None:
            known.endpoint = known.endpoint.model_copy(update=changes)

    async def _disable(self, endpoint_id: str, reason: str) -> None:
        disabled = await self._endpoints.set_state(endpoint_id, EndpointState.DISABLED, reason)
        self._note(endpoint_id, state=EndpointState.DISABLED, state_reason=reason)
        await announce_state_change(
            self._endpoints,
            self._deliveries,
            disabled,
            state=EndpointState.DISABLED,
            reason=reason,
            now=self._clock(),
        )

    async def _slot(self, endpoint_id: str, lanes: list[Kept]) -> None:
        """Attempt the heads of the slot's queues (`LANES_PER_SLOT` at most) in turn, one request at a time;
        and while each delivery leaves a queue leased to this instance with its next event (see
        `DeliveryStore.settle`), that next event, once its settle has answered. A delivery's settle runs
        while the slot's other queue is attempted; anything else is settled before the slot's next request
        (the breaker counts failures as they come). Up to `FOLLOW_LIMIT` attempts in all; queues still
        leased to the slot when it stops (the worker is stopping, or a step failed) are handed back, due at
        once."""
        ready = deque(lanes)  # leased to the slot, their next event not attempted yet, in turn
        settling: dict[asyncio.Task[Kept | None], bool] = {}  # a delivery's settle → whether it may keep
        attempted = 0
        try:
            while ready or settling:
                if self._stopping.is_set():
                    break  # the attempts in flight finish; the backlogs are not theirs to go on through
                if not ready:
                    # The oldest settle, usually the first to answer (it was sent first); cheaper than
                    # `asyncio.wait`. Its error, if any, `_harvest` raises.
                    with contextlib.suppress(Exception):
                        await next(iter(settling))
                self._harvest(settling, ready)
                if not ready:
                    continue
                claim, head = ready.popleft()
                known = self._known.get(endpoint_id)
                if known is None:  # deleted meanwhile: its leases lapse with its keys
                    ready.clear()
                    continue
                attempted += 1
                # Another event after this one only within the limit, counting those the slot may still
                # attempt: its other queue's, and the one a settle in flight may keep.
                follow = attempted + len(ready) + sum(settling.values()) < FOLLOW_LIMIT
                result = await self._attempt_one(known.endpoint, claim, head)
                if result is None:
                    continue
                conclusion = self._conclude(known.endpoint, claim, head, result, follow=follow)
                if result.delivered and (ready or settling):
                    settling[asyncio.create_task(conclusion)] = follow
                else:
                    kept = self._kept(await conclusion)
                    if kept is not None:
                        ready.append(kept)
        except Exception:
            log.exception("relay.attempt_failed", extra={"endpoint_id": endpoint_id})
        finally:
            await self._hand_back(ready, settling)

    def _harvest(self, settling: dict[asyncio.Task[Kept | None], bool], ready: deque[Kept]) -> None:
        """Take the settles that answered out of `settling`, and the queues they kept into `ready`."""
        for task in [t for t in settling if t.done()]:
            del settling[task]
            kept = self._kept(task.result())
            if kept is not None:
                ready.append(kept)

    def _kept(self, kept: Kept | None) -> Kept | None:
        """A queue a settle kept for the slot, to attempt next; None if its endpoint was deleted."""
        if kept is None:
            return None
        claim, head = kept
        if head.config is not None:  # changed since cached: attempt with what is stored now
            self._learn(claim.endpoint_id, head.config)
        return kept if claim.endpoint_id in self._known else None  # deleted: the lease lapses with its keys

    async def _hand_back(self, ready: deque[Kept], settling: dict[asyncio.Task[Kept | None], bool]) -> None:
        """When a slot ends: let its settles in flight finish, and hand back, due at once, every queue still
        leased to it and not attempted (another slot, or instance, takes them)."""
        if not ready and not settling:  # the slot went through everything it held
            return
        for concluded in await asyncio.gather(*settling, return_exceptions=True):
            if isinstance(concluded, BaseException):
                log.error("relay.attempt_failed", exc_info=concluded)
            elif (kept := self._kept(concluded)) is not None:
                ready.append(kept)
        if not ready:
            return
        now = self._clock()
        handed = await asyncio.gather(
            *(
                self._settle(claim, head, "hold", now, now, None, self._known[claim.endpoint_id].endpoint)
                for claim, head in ready
                if claim.endpoint_id in self._known
            ),
            return_exceptions=True,
        )
        for outcome in handed:
            if isinstance(outcome, BaseException):
                log.error("relay.hand_back_failed", exc_info=outcome)

    async def _attempt_one(self, endpoint: Endpoint, claim: Claim, head: Head) -> AttemptResult | None:
        """One attempt at the claimed queue's head: its result, to conclude; None if it was not made (the
        endpoint is not active, the lease is too short, the target is unsafe, the body is too large) and its
        outcome is settled already."""
        now = self._clock()
        if endpoint.effective_state(now) is not EndpointState.ACTIVE:
            # Disabled or paused while this round was claiming (by an attempt of this instance that
            # answered 410, or tripped the breaker): leave the event queued, due when it is enabled.
            await self._settle(claim, head, "hold", now, now, None, endpoint)
            return None
        if len(head.event.body) > self._settings.relay_max_request_bytes:
            limit = self._settings.relay_max_request_bytes
            refused = AttemptResult(
                None, 0, "", f"body of {len(head.event.body)} bytes exceeds {limit}", None
            )
            await self._conclude(endpoint, claim, head, refused, final=True)
            return None
        deadline = attempt_deadline(self._settings.relay_timeout_seconds, lease_ms=claim.lease_ms, now=now)
        if deadline <= 0:
            # Claimed too long ago (a stalled loop or Redis): an attempt now could outlive the lease.
            log.warning("relay.lease_short", extra={"endpoint_id": claim.endpoint_id})
            await self._settle(claim, head, "hold", now, now, None, endpoint)
            return None
        try:
            # The form, and an address in the URL; a name is checked by the client's resolver.
            check_target(
                endpoint.url, require_https=self._settings.relay_require_https, allowed=self._allowed
            )
            return await post_event(
                self._client,
                endpoint,
                head.event.event_id,
                head.event.body,
                now,
                deadline,
                self._settings.relay_max_response_bytes,
                head.event.traceparent,
            )
        except UnsafeTarget as error:
            await self._disable(endpoint.endpoint_id, f"unsafe target: {error}")
            log.warning(
                "relay.endpoint_disabled", extra={"endpoint_id": endpoint.endpoint_id, "reason": "unsafe"}
            )
            await self._settle(claim, head, "hold", now, now, None, endpoint)
            return None

    async def _conclude(
        self,
        endpoint: Endpoint,
        claim: Claim,
        head: Head,
        result: AttemptResult,
        final: bool = False,
        *,
        follow: bool = False,
    ) -> Kept | None:
        """Settle an attempt by its result; returns the queue's next event if a delivery kept the queue."""
        now = self._clock()
        attempt = {
            "event_id": head.event.event_id,
            "order_id": head.event.order_id,
            "sequence": head.event.sequence,
            "attempt": len(head.attempts) + 1,
            "at": now.isoformat(),
            "status": result.status,
            "latency_ms": result.latency_ms,
            "response": result.body,
            "error": result.error,
            # A JSON object in a string: the attempt log's fields are strings.
            "request_headers": _HEADERS.encode(result.request_headers).decode()
            if result.request_headers
            else None,
        }
        (_ATTEMPTED if result.delivered else _FAILED).inc()
        metrics.WEBHOOK_LATENCY.observe(result.latency_ms / 1000)
        if result.delivered:
            # Not while stopping: the attempts in flight are to finish, not to go on through backlogs.
            follow = follow and not self._stopping.is_set()
            settled = await self._settle(
                claim, head, "delivered", now, None, attempt, endpoint, follow=follow
            )
            kept = settled.kept if settled is not None else None
            try:
                occurred_at = _OCCURRED.decode(head.event.body).occurred_at
            except msgspec.DecodeError:
                occurred_at = None
            if occurred_at is not None:
                metrics.WEBHOOK_DELIVERY_LAG.observe((now - occurred_at).total_seconds())
            return kept
        if result.status == 410:
            # Gone: the client took the endpoint down. Keep the queue for when it is enabled again.
            await self._disable(endpoint.endpoint_id, "answered 410 Gone")
            log.warning(
                "relay.endpoint_disabled", extra={"endpoint_id": endpoint.endpoint_id, "reason": "410"}
            )
            await self._settle(claim, head, "retry", now, now, attempt, endpoint)
            return None
        schedule = self._settings.relay_retry_schedule_seconds
        if final or len(head.attempts) >= len(schedule):
            await self._settle(claim, head, "dead", now, None, attempt, endpoint)
            metrics.WEBHOOK_DEAD.inc()
            return None
        wait = schedule[len(head.attempts)] * (1 + self._random.uniform(-1, 1) * self._settings.relay_jitter)
        if result.retry_after is not None:
            wait = max(wait, min(result.retry_after, self._settings.relay_max_retry_after_seconds))
        await self._settle(claim, head, "retry", now, now + timedelta(seconds=wait), attempt, endpoint)
        return None

    async def _settle(
        self,
        claim: Claim,
        head: Head,
        outcome: Outcome,
        now: datetime,
        next_attempt: datetime | None,
        attempt: dict[str, Any] | None,
        endpoint: Endpoint,
        *,
        follow: bool = False,
    ) -> Settled | None:
        """Record the attempt's outcome; with `follow`, keep the queue if it has more (only a delivery keeps
        one: `Settled.kept`). None if the lease was lost."""
        breaker = (self._settings.relay_breaker_failures, self._settings.relay_breaker_pause_seconds)
        settled = await self._deliveries.settle(
            claim,
            head,
            outcome,
            now,
            next_attempt,
            attempt,
            breaker,
            self._settings.relay_attempt_log_length,
            keep_lease_seconds=self._lease_seconds if follow else None,
            version=self._version_of(claim.endpoint_id) or "",
        )
        if settled is None:
            log.warning(
                "relay.lease_lost", extra={"endpoint_id": claim.endpoint_id, "queue_id": claim.queue_id}
            )
            return None
        if outcome == "delivered":
            _DELIVERED.inc()
        failures = settled.failures
        if not failures:  # the common case, a delivery: no breaker to open, nothing failing for long
            return settled
        if failures >= breaker[0] and outcome != "hold":  # the settle script opened the breaker
            paused_until = now + timedelta(seconds=breaker[1])
            self._note(endpoint.endpoint_id, paused_until=paused_until)
            if failures == breaker[0]:  # it opened now (later failures only extend the pause)
                await announce_state_change(
                    self._endpoints,
                    self._deliveries,
                    endpoint,
                    state=EndpointState.PAUSED,
                    reason=f"{failures} failed attempts in a row",
                    now=now,
                    paused_until=paused_until,
                )
        since_ms = settled.failing_since_ms
        failing_since = from_epoch_ms(since_ms) if since_ms else now
        too_long = now - failing_since > timedelta(seconds=self._settings.relay_disable_after_seconds)
        if too_long and endpoint.state is EndpointState.ACTIVE:
            await self._disable(endpoint.endpoint_id, "failing for too long")
            log.warning("relay.endpoint_disabled", extra={"endpoint_id": endpoint.endpoint_id})
        return settled
