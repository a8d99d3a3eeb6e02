"""The delivery loop: claim due queues per endpoint, attempt their next event, settle the outcome."""

import asyncio
import json
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from service import metrics
from service.config import RelaySettings
from service.relay.safety import UnresolvableTarget, UnsafeTarget, check_target
from service.relay.sender import AttemptResult, HttpClient, post_event
from service.store.webhook_deliveries import Claim, DeliveryStore, Head, Outcome
from service.store.webhook_endpoints import Endpoint, EndpointState, EndpointStore

log = logging.getLogger(__name__)


class DeliveryWorker:
    """Attempts run concurrently; one slow or failing endpoint only ever occupies its own slots."""

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
        self._lease_seconds = settings.relay_timeout_seconds * 2 + 5
        self._in_flight: dict[str, set[asyncio.Task[None]]] = {}
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._next_gauges = datetime.min.replace(tzinfo=UTC)
        # The endpoints as last read, re-read on each poll; rounds woken in between use them as they are,
        # with this instance's own breaker and state changes applied (see `_note`).
        self._registered: dict[str, Endpoint] = {}
        self._next_refresh = datetime.min.replace(tzinfo=UTC)
        self._notes: list[tuple[int, str, dict[str, Any]]] = []  # (number, endpoint, changes) since a read
        self._noted = 0

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
                    await self.dispatch_due(refresh=self._clock() >= self._next_refresh)
                except Exception:
                    log.exception("relay.dispatch_failed")
                woken = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait(
                    {stopping, woken},
                    timeout=self._settings.relay_poll_seconds,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                woken.cancel()
        finally:
            stopping.cancel()

    async def dispatch_due(self, refresh: bool = True) -> int:
        """Claim what is due at endpoints with free slots and start attempts; returns how many started.

        `refresh`: read the endpoints first (two round trips) rather than use those last read.
        """
        now = self._clock()
        if refresh:
            reading_after = self._noted
            registered = await self._endpoints.get_many(await self._endpoints.all_ids())
            self._registered = {e.endpoint_id: e for e in registered}
            self._next_refresh = now + timedelta(seconds=self._settings.relay_poll_seconds)
            # Changes noted while reading may be missing from what was read: apply them again.
            self._notes = [note for note in self._notes if note[0] > reading_after]
            for _, endpoint_id, changes in self._notes:
                self._apply(endpoint_id, changes)
        if now >= self._next_gauges:
            await self._update_gauges(list(self._registered.values()), now)
        endpoints = {
            endpoint_id: e
            for endpoint_id, e in self._registered.items()
            if e.effective_state(now) is EndpointState.ACTIVE
        }
        free = {
            endpoint_id: self._settings.relay_concurrency_per_endpoint
            - len(self._in_flight.get(endpoint_id, ()))
            for endpoint_id in endpoints
        }
        # Each endpoint claims no more than its free slots: a claim not started would wait out its lease.
        claims = await self._deliveries.claim(
            {endpoint_id: slots for endpoint_id, slots in free.items() if slots > 0}, now, self._lease_seconds
        )
        if not claims:
            return 0
        heads = await self._deliveries.heads(claims)
        for claim, head in zip(claims, heads, strict=True):
            task = asyncio.create_task(self._attempt(endpoints[claim.endpoint_id], claim, head))
            tasks = self._in_flight.setdefault(claim.endpoint_id, set())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            # A finished attempt frees its slot and may have made its queue's next event due.
            task.add_done_callback(lambda _: self._wake.set())
        return len(claims)

    def _note(self, endpoint_id: str, **changes: Any) -> None:
        """Apply a change this instance made to an endpoint to the endpoints as last read, so that rounds
        before the next read do not claim for an endpoint it has just paused or disabled."""
        self._noted += 1
        self._notes.append((self._noted, endpoint_id, changes))
        self._apply(endpoint_id, changes)

    def _apply(self, endpoint_id: str, changes: dict[str, Any]) -> None:
        known = self._registered.get(endpoint_id)
        if known is not None:
            self._registered[endpoint_id] = known.model_copy(update=changes)

    async def _disable(self, endpoint_id: str, reason: str) -> None:
        await self._endpoints.set_state(endpoint_id, EndpointState.DISABLED, reason)
        self._note(endpoint_id, state=EndpointState.DISABLED, state_reason=reason)

    async def _update_gauges(self, registered: list[Endpoint], now: datetime) -> None:
        """Endpoint states and backlog, at most once a second (a round trip over every endpoint)."""
        self._next_gauges = now + timedelta(seconds=1)
        backlogs = await self._deliveries.backlogs([e.endpoint_id for e in registered])
        for state in EndpointState:
            chosen = [e for e in registered if e.effective_state(now) is state]
            metrics.WEBHOOK_ENDPOINTS.labels(state.value).set(len(chosen))
            metrics.WEBHOOK_BACKLOG.labels(state.value).set(sum(backlogs[e.endpoint_id] for e in chosen))

    async def _attempt(self, endpoint: Endpoint, claim: Claim, head: Head | None) -> None:
        try:
            if head is None:
                return
            now = self._clock()
            latest = self._registered.get(claim.endpoint_id, endpoint)
            if latest.effective_state(now) is not EndpointState.ACTIVE:
                # Disabled or paused while this round was claiming (by an attempt of this instance that
                # answered 410, or tripped the breaker): leave the event queued, due when it is enabled.
                await self._settle(claim, head, "hold", now, now, None, latest)
                return
            if len(head.event.body) > self._settings.relay_max_request_bytes:
                limit = self._settings.relay_max_request_bytes
                refused = AttemptResult(
                    None, 0, "", f"body of {len(head.event.body)} bytes exceeds {limit}", None
                )
                await self._conclude(endpoint, claim, head, refused, final=True)
                return
            try:
                await check_target(
                    endpoint.url, require_https=self._settings.relay_require_https, allowed=self._allowed
                )
            except UnsafeTarget as error:
                await self._disable(endpoint.endpoint_id, f"unsafe target: {error}")
                log.warning(
                    "relay.endpoint_disabled", extra={"endpoint_id": endpoint.endpoint_id, "reason": "unsafe"}
                )
                await self._settle(claim, head, "hold", now, now, None, endpoint)
                return
            except UnresolvableTarget as error:
                result = AttemptResult(None, 0, "", str(error), None)
            else:
                result = await post_event(
                    self._client,
                    endpoint,
                    head.event.event_id,
                    head.event.body,
                    now,
                    self._settings.relay_timeout_seconds,
                    self._settings.relay_max_response_bytes,
                )
            await self._conclude(endpoint, claim, head, result)
        except Exception:
            log.exception(
                "relay.attempt_failed", extra={"endpoint_id": claim.endpoint_id, "queue_id": claim.queue_id}
            )

    async def _conclude(
        self, endpoint: Endpoint, claim: Claim, head: Head, result: AttemptResult, final: bool = False
    ) -> None:
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
        }
        metrics.WEBHOOK_ATTEMPTS.labels("delivered" if result.delivered else "failed").inc()
        metrics.WEBHOOK_LATENCY.observe(result.latency_ms / 1000)
        if result.delivered:
            await self._settle(claim, head, "delivered", now, None, attempt, endpoint)
            occurred_at = json.loads(head.event.body).get("occurred_at")
            if occurred_at:
                metrics.WEBHOOK_DELIVERY_LAG.observe(
                    (now - datetime.fromisoformat(occurred_at)).total_seconds()
                )
            return
        if result.status == 410:
            # Gone: the client took the endpoint down. Keep the queue for when it is enabled again.
            await self._disable(endpoint.endpoint_id, "answered 410 Gone")
            log.warning(
                "relay.endpoint_disabled", extra={"endpoint_id": endpoint.endpoint_id, "reason": "410"}
            )
            await self._settle(claim, head, "retry", now, now, attempt, endpoint)
            return
        schedule = self._settings.relay_retry_schedule_seconds
        if final or len(head.attempts) >= len(schedule):
            await self._settle(claim, head, "dead", now, None, attempt, endpoint)
            metrics.WEBHOOK_DEAD.inc()
            return
        wait = schedule[len(head.attempts)] * (1 + self._random.uniform(-1, 1) * self._settings.relay_jitter)
        if result.retry_after is not None:
            wait = max(wait, min(result.retry_after, self._settings.relay_max_retry_after_seconds))
        await self._settle(claim, head, "retry", now, now + timedelta(seconds=wait), attempt, endpoint)

    async def _settle(
        self,
        claim: Claim,
        head: Head,
        outcome: Outcome,
        now: datetime,
        next_attempt: datetime | None,
        attempt: dict[str, Any] | None,
        endpoint: Endpoint,
    ) -> None:
        breaker = (self._settings.relay_breaker_failures, self._settings.relay_breaker_pause_seconds)
        failures = await self._deliveries.settle(
            claim, head, outcome, now, next_attempt, attempt, breaker, self._settings.relay_attempt_log_length
        )
        if failures is None:
            log.warning(
                "relay.lease_lost", extra={"endpoint_id": claim.endpoint_id, "queue_id": claim.queue_id}
            )
            return
        if failures >= breaker[0] and outcome != "hold":  # the settle script opened the breaker
            self._note(endpoint.endpoint_id, paused_until=now + timedelta(seconds=breaker[1]))
        if outcome == "delivered":
            metrics.WEBHOOK_DELIVERED.inc()
        failing_since = endpoint.failing_since or now
        too_long = now - failing_since > timedelta(seconds=self._settings.relay_disable_after_seconds)
        if failures and too_long and endpoint.state is EndpointState.ACTIVE:
            await self._disable(endpoint.endpoint_id, "failing for too long")
            log.warning("relay.endpoint_disabled", extra={"endpoint_id": endpoint.endpoint_id})
