"""The delivery loop: claim due queues at the endpoints the due index names, attempt their next event, settle
the outcome."""

import asyncio
import json
import logging
import random
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

FOLLOW_LIMIT = 32
"""Attempts one slot makes in a row (the next event of a kept queue, or another due queue claimed at once)
before it goes back to the rounds, so that a client's other endpoints get their turn at its slots."""

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
        found = await self._deliveries.claim_checked(
            self._requests([endpoint_id for endpoint_id, _ in due]), now, self._lease_seconds, with_heads=True
        )
        revisions, claimed = self._revisions(due, found)
        # The attempts first: the index's revise is not theirs to wait for (a settle that touches the index
        # before the revise lands changes the entry's mark, so the revise leaves that entry alone).
        for claim, head in claimed:
            self._start_attempt(claim, head)
        await self._deliveries.index.revise(revisions)
        return len(claimed)

    def _revisions(
        self, due: list[tuple[str, str]], found: dict[str, EndpointClaims]
    ) -> tuple[list[tuple[str, str, int | None]], list[tuple[Claim, Head | None]]]:
        """Where each due endpoint's index entry is to move after what its claim found (see
        `DueIndex.revise`), and the claims to attempt with their heads."""
        revisions: list[tuple[str, str, int | None]] = []
        claimed: list[tuple[Claim, Head | None]] = []
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
                claimed += zip(claims.claims, claims.heads, strict=True)
        return revisions, claimed

    def _requests(self, endpoint_ids: Sequence[str]) -> dict[str, tuple[int, str | None]]:
        """How many queues to claim at each endpoint (its free slots, within its client's) and the version
        each claim is to check; 0 for an endpoint that is not ACTIVE (the claim still checks the version and
        says when it is due next); none for an ACTIVE one without a free slot."""
        per_endpoint = self._settings.relay_concurrency_per_endpoint
        client_free: dict[str, int] = {}
        requests: dict[str, tuple[int, str | None]] = {}
        for endpoint_id in endpoint_ids:
            known = self._known.get(endpoint_id)
            if known is None:
                continue
            endpoint, limit = known.endpoint, 0
            if endpoint.state is EndpointState.ACTIVE:  # a pause is for the claim script to judge
                client = endpoint.client_id
                free = client_free.setdefault(
                    client,
                    self._settings.relay_concurrency_per_client - self._in_flight_by_client.get(client, 0),
                )
                limit = max(0, min(per_endpoint - len(self._in_flight.get(endpoint_id, ())), free))
                client_free[client] = free - limit
                if not limit:
                    # No slot: no claim either, so a client whose many endpoints wait for their slots costs
                    # a round little more than reading their entries. A finished attempt wakes the loop.
                    continue
            requests[endpoint_id] = (limit, known.version)
        return requests

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

    def _start_attempt(self, claim: Claim, head: Head | None) -> None:
        known = self._known.get(claim.endpoint_id)
        if known is None:  # deleted meanwhile: its lease lapses with its keys
            return
        client = known.endpoint.client_id
        task = asyncio.create_task(self._attempt(known.endpoint, claim, head))
        tasks = self._in_flight.setdefault(claim.endpoint_id, set())
        tasks.add(task)
        self._in_flight_by_client[client] = self._in_flight_by_client.get(client, 0) + 1

        def finished(_: asyncio.Task[None]) -> None:
            tasks.discard(task)
            if not tasks:
                self._in_flight.pop(claim.endpoint_id, None)
            left = self._in_flight_by_client[client] - 1
            if left:
                self._in_flight_by_client[client] = left
            else:
                del self._in_flight_by_client[client]
            # A finished attempt frees its slots and may have made its queue's next event due.
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

    async def _attempt(self, endpoint: Endpoint, claim: Claim, head: Head | None) -> None:
        """Attempt the claimed queue's head; and while each delivery leaves the queue leased to this
        instance with its next event (see `DeliveryStore.settle`), that next event in the same slot."""
        try:
            for attempted in range(1, FOLLOW_LIMIT + 1):
                if head is None:
                    return
                kept = await self._attempt_one(endpoint, claim, head, follow=attempted < FOLLOW_LIMIT)
                if kept is None:
                    return
                claim, head = kept
                if head.config is not None:  # changed since cached: attempt with what is stored now
                    self._learn(claim.endpoint_id, head.config)
                known = self._known.get(claim.endpoint_id)
                if known is None:  # deleted meanwhile: its lease lapses with its keys
                    return
                endpoint = known.endpoint
        except Exception:
            log.exception(
                "relay.attempt_failed", extra={"endpoint_id": claim.endpoint_id, "queue_id": claim.queue_id}
            )

    async def _attempt_one(
        self, endpoint: Endpoint, claim: Claim, head: Head, *, follow: bool
    ) -> tuple[Claim, Head] | None:
        """One attempt and its settle; with `follow`, after a delivery, returns the next event to attempt in
        this slot: the queue's next if it has more, else another due queue's of the endpoint (the settle
        leases it; see `DeliveryStore.settle`)."""
        now = self._clock()
        known = self._known.get(claim.endpoint_id)
        latest = known.endpoint if known is not None else endpoint
        if latest.effective_state(now) is not EndpointState.ACTIVE:
            # Disabled or paused while this round was claiming (by an attempt of this instance that
            # answered 410, or tripped the breaker): leave the event queued, due when it is enabled.
            await self._settle(claim, head, "hold", now, now, None, latest)
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
            result = await post_event(
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
        return await self._conclude(endpoint, claim, head, result, follow=follow)

    async def _conclude(
        self,
        endpoint: Endpoint,
        claim: Claim,
        head: Head,
        result: AttemptResult,
        final: bool = False,
        *,
        follow: bool = False,
    ) -> tuple[Claim, Head] | None:
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
            "request_headers": json.dumps(result.request_headers) if result.request_headers else None,
        }
        metrics.WEBHOOK_ATTEMPTS.labels("delivered" if result.delivered else "failed").inc()
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
        failures = settled.failures
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
        if outcome == "delivered":
            metrics.WEBHOOK_DELIVERED.inc()
        since_ms = settled.failing_since_ms
        failing_since = from_epoch_ms(since_ms) if since_ms else now
        too_long = now - failing_since > timedelta(seconds=self._settings.relay_disable_after_seconds)
        if failures and too_long and endpoint.state is EndpointState.ACTIVE:
            await self._disable(endpoint.endpoint_id, "failing for too long")
            log.warning("relay.endpoint_disabled", extra={"endpoint_id": endpoint.endpoint_id})
        return settled
