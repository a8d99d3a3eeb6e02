"""The delivery loop: claim due orders per endpoint, attempt their next event, settle the outcome."""

import asyncio
import contextlib
import ipaddress
import json
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from service import metrics
from service.config import RelaySettings
from service.relay.deliveries import Claim, DeliveryStore, Head, Outcome
from service.relay.endpoints import Endpoint, EndpointState, EndpointStore
from service.relay.safety import UnresolvableTarget, UnsafeTarget, check_target
from service.relay.sender import AttemptResult, post_event

log = logging.getLogger(__name__)


class DeliveryWorker:
    """Attempts run concurrently; one slow or failing endpoint only ever occupies its own slots."""

    def __init__(
        self,
        endpoints: EndpointStore,
        deliveries: DeliveryStore,
        client: httpx.AsyncClient,
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
        self._allowed = [ipaddress.ip_network(n) for n in settings.relay_allowed_networks]
        self._lease_seconds = settings.relay_timeout_seconds * 2 + 5
        self._in_flight: dict[str, set[asyncio.Task[None]]] = {}
        self._stopping = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._next_gauges = datetime.min.replace(tzinfo=UTC)

    async def start(self) -> None:
        """Start delivering in the background."""
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

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.dispatch_due()
            except Exception:
                log.exception("relay.dispatch_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._settings.relay_poll_seconds)

    async def dispatch_due(self) -> int:
        """Claim what is due at endpoints with free slots and start attempts; returns how many started."""
        now = self._clock()
        registered = await self._endpoints.get_many(await self._endpoints.all_ids())
        if now >= self._next_gauges:
            await self._update_gauges(registered, now)
        endpoints = {e.endpoint_id: e for e in registered if e.effective_state(now) is EndpointState.ACTIVE}
        free = {
            endpoint_id: self._settings.relay_concurrency_per_endpoint
            - len(self._in_flight.get(endpoint_id, ()))
            for endpoint_id in endpoints
        }
        # Each endpoint claims no more than its free slots: a claim not started would wait out its lease.
        claims = await self._deliveries.claim(
            {endpoint_id: slots for endpoint_id, slots in free.items() if slots > 0}, now, self._lease_seconds
        )
        started = 0
        for claim in claims:
            task = asyncio.create_task(self._attempt(endpoints[claim.endpoint_id], claim))
            tasks = self._in_flight.setdefault(claim.endpoint_id, set())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            started += 1
        return started

    async def _update_gauges(self, registered: list[Endpoint], now: datetime) -> None:
        """Endpoint states and backlog, at most once a second (a round trip over every endpoint)."""
        self._next_gauges = now + timedelta(seconds=1)
        backlogs = await self._deliveries.backlogs([e.endpoint_id for e in registered])
        for state in EndpointState:
            chosen = [e for e in registered if e.effective_state(now) is state]
            metrics.WEBHOOK_ENDPOINTS.labels(state.value).set(len(chosen))
            metrics.WEBHOOK_BACKLOG.labels(state.value).set(sum(backlogs[e.endpoint_id] for e in chosen))

    async def _attempt(self, endpoint: Endpoint, claim: Claim) -> None:
        try:
            head = await self._deliveries.head(claim)
            if head is None:
                return
            now = self._clock()
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
                await self._endpoints.set_state(
                    endpoint.endpoint_id, EndpointState.DISABLED, f"unsafe target: {error}"
                )
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
                "relay.attempt_failed", extra={"endpoint_id": claim.endpoint_id, "order_id": claim.order_id}
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
            await self._endpoints.set_state(endpoint.endpoint_id, EndpointState.DISABLED, "answered 410 Gone")
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
                "relay.lease_lost", extra={"endpoint_id": claim.endpoint_id, "order_id": claim.order_id}
            )
            return
        if outcome == "delivered":
            metrics.WEBHOOK_DELIVERED.inc()
        failing_since = endpoint.failing_since or now
        too_long = now - failing_since > timedelta(seconds=self._settings.relay_disable_after_seconds)
        if failures and too_long and endpoint.state is EndpointState.ACTIVE:
            await self._endpoints.set_state(
                endpoint.endpoint_id, EndpointState.DISABLED, "failing for too long"
            )
            log.warning("relay.endpoint_disabled", extra={"endpoint_id": endpoint.endpoint_id})
