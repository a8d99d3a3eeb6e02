"""Webhook endpoints: registered per client, each with its own signing secret(s), one store in Redis."""

import base64
import secrets
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field
from redis.asyncio import Redis
from redis.exceptions import WatchError

from contracts.events import CommandRejected, EndpointStateChanged, OrderStatusChanged
from contracts.limits import WEBHOOK_ENDPOINTS_PER_CLIENT
from service.clock import from_epoch_ms
from service.store.capped_sets import PROVISIONAL_MS, LimitReached, admit
from service.store.keys import (
    WEBHOOK_ENDPOINTS,
    client_webhooks_key,
    webhook_due_key,
    webhook_endpoint_key,
    webhook_fixed_keys,
    webhook_pending_key,
)
from service.store.webhook_due_index import DueIndex

_BREAKER_FIELDS = {"consecutive_failures", "failing_since", "paused_until"}
"""Stored in their own hash fields (`failures`, `failing_since`, `paused_until`) by the settle script."""


class EndpointState(StrEnum):
    """ACTIVE endpoints get deliveries; PAUSED ones after repeated failures, until `paused_until`;
    DISABLED ones (by the client, by a 410, or after failing too long) get none until enabled again."""

    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    DISABLED = "DISABLED"


class WebhookEventType(StrEnum):
    """What an endpoint may subscribe to: the `type` of the events delivered to it."""

    ORDER_STATUS_CHANGED = "order_status_changed"
    COMMAND_REJECTED = "command_rejected"
    ENDPOINT_STATE_CHANGED = "endpoint_state_changed"
    """Another endpoint of the same client was paused, disabled or enabled again."""


DEFAULT_EVENT_TYPES = (WebhookEventType.ORDER_STATUS_CHANGED,)
"""What an endpoint gets unless it asks for more (endpoints registered before event types, too)."""


def chosen_event_types(chosen: Iterable[WebhookEventType] | None) -> list[WebhookEventType]:
    """The chosen event types, each once, in a fixed order; the default if none are chosen."""
    unique = set(chosen or DEFAULT_EVENT_TYPES)
    return [t for t in WebhookEventType if t in unique]


class SigningSecret(BaseModel):
    """A `whsec_…` secret; an old one stays valid (and used for signing) until `expires_at`."""

    secret: str
    expires_at: datetime | None = None


class Endpoint(BaseModel):
    """One HTTP endpoint of one client."""

    endpoint_id: str
    client_id: str
    url: str
    description: str = ""
    status_filter: list[int] | None = Field(
        default=None, description="Deliver only status events with these status codes; all when null."
    )
    event_types: list[WebhookEventType] = Field(
        default_factory=lambda: list(DEFAULT_EVENT_TYPES),
        min_length=1,
        description="The types of event delivered: status changes, command rejections, or both.",
    )
    state: EndpointState = EndpointState.ACTIVE
    state_reason: str | None = None
    secrets: list[SigningSecret]
    created_at: datetime
    consecutive_failures: int = 0
    failing_since: datetime | None = None
    paused_until: datetime | None = None

    def effective_state(self, now: datetime) -> EndpointState:
        """PAUSED while the circuit breaker holds an ACTIVE endpoint back, else the stored state."""
        if self.state is EndpointState.ACTIVE and self.paused_until is not None and self.paused_until > now:
            return EndpointState.PAUSED
        return self.state

    def wants(self, event: OrderStatusChanged | CommandRejected | EndpointStateChanged) -> bool:
        """Whether the event goes to this endpoint: its type is subscribed, a status event passes the
        status filter, and an endpoint's state change is another endpoint's (the one that changed may not
        be taking deliveries)."""
        if isinstance(event, CommandRejected):
            return self.wants_rejections()
        if isinstance(event, EndpointStateChanged):
            return (
                WebhookEventType.ENDPOINT_STATE_CHANGED in self.event_types
                and event.endpoint_id != self.endpoint_id
            )
        return self.wants_status(event.status)

    def wants_status(self, status: int) -> bool:
        """Whether a status event of `status` goes to this endpoint (`wants`, for the relay's consumer,
        which reads only a few fields of each event)."""
        return WebhookEventType.ORDER_STATUS_CHANGED in self.event_types and (
            self.status_filter is None or status in self.status_filter
        )

    def wants_rejections(self) -> bool:
        """Whether command rejections go to this endpoint."""
        return WebhookEventType.COMMAND_REJECTED in self.event_types

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets to sign with now: the current one and any still in their grace period."""
        return [s.secret for s in self.secrets if s.expires_at is None or s.expires_at > now]

    def public(self) -> dict[str, object]:
        """The endpoint without its secrets, for listings and logs."""
        return self.model_dump(mode="json", exclude={"secrets"})


def new_secret() -> str:
    """A fresh Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class EndpointStore:
    """Registration, listing, state changes and secret rotation."""

    def __init__(self, redis: "Redis") -> None:
        self._redis = redis
        self._index = DueIndex(redis)
        # Stored configuration → parsed endpoint: the queuer reads its clients' endpoints on each batch, and
        # configurations rarely change, so each is parsed once (copies are handed out; callers mutate them).
        self._parsed: dict[bytes, Endpoint] = {}

    async def create(
        self,
        client_id: str,
        url: str,
        now: datetime,
        description: str = "",
        status_filter: list[int] | None = None,
        subscribed: Iterable[WebhookEventType] | None = None,
        *,
        limit: int = WEBHOOK_ENDPOINTS_PER_CLIENT,
    ) -> Endpoint:
        """Register an endpoint (for status events only unless `subscribed` says otherwise); its secret is in
        the returned object, and shown nowhere else. `LimitReached` if the client has `limit` already."""
        endpoint = Endpoint(
            endpoint_id=f"ep_{uuid.uuid4().hex}",
            client_id=client_id,
            url=url,
            description=description,
            status_filter=status_filter,
            event_types=chosen_event_types(subscribed),
            secrets=[SigningSecret(secret=new_secret())],
            created_at=now,
        )
        key = webhook_endpoint_key(endpoint.endpoint_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            # The configuration and state; the breaker's counters are the workers' to write.
            pipe.hset(
                key, mapping={"config": endpoint.model_dump_json(exclude=_BREAKER_FIELDS), "version": 1}
            )
            pipe.pexpire(key, PROVISIONAL_MS)  # until admitted (see service.store.capped_sets)
            await pipe.execute()
        admitted = await admit(
            self._redis, client_webhooks_key(client_id), endpoint.endpoint_id, limit, self._exist
        )
        if not admitted:
            await self._redis.delete(key)
            raise LimitReached("webhook endpoints", limit)
        await self._redis.persist(key)
        # Only now do the delivery workers see it: never an endpoint its client's bound refused.
        await self._redis.sadd(WEBHOOK_ENDPOINTS, endpoint.endpoint_id)
        return endpoint

    async def _exist(self, endpoint_ids: list[str]) -> list[bool]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for endpoint_id in endpoint_ids:
                pipe.exists(webhook_endpoint_key(endpoint_id))
            return [bool(n) for n in await pipe.execute()]

    async def get(self, endpoint_id: str) -> Endpoint | None:
        """One endpoint, or None."""
        found = await self.get_many([endpoint_id])
        return found[0] if found else None

    async def get_many(self, endpoint_ids: list[str]) -> list[Endpoint]:
        """Several endpoints with their circuit-breaker state, in one round trip (missing ones left out)."""
        return [endpoint for endpoint, _ in (await self.get_versioned(endpoint_ids)).values()]

    async def get_versioned(self, endpoint_ids: list[str]) -> dict[str, tuple[Endpoint, str]]:
        """`get_many`, by id, each with its configuration version (see `webhook_endpoint_key`)."""
        fields = ["config", "failures", "failing_since", "paused_until", "version"]
        async with self._redis.pipeline(transaction=False) as pipe:
            for endpoint_id in endpoint_ids:
                pipe.hmget(webhook_endpoint_key(endpoint_id), fields)
            found = await pipe.execute()
        endpoints = {}
        for endpoint_id, (config, failures, failing_since, paused_until, version) in zip(
            endpoint_ids, found, strict=True
        ):
            if not config:
                continue
            endpoint = self.parse(config, failing_since=failing_since, paused_until=paused_until)
            endpoint.consecutive_failures = int(failures or 0)
            endpoints[endpoint_id] = (endpoint, (version or b"0").decode())
        return endpoints

    async def versions(self, endpoint_ids: list[str]) -> dict[str, tuple[str, int | None]]:
        """Each endpoint's configuration version and `paused_until` (epoch ms), without the configuration:
        what a cache needs to know whether to read the configuration again. One round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for endpoint_id in endpoint_ids:
                pipe.hmget(webhook_endpoint_key(endpoint_id), ["version", "paused_until"])
            found = await pipe.execute()
        return {
            endpoint_id: ((version or b"0").decode(), int(paused) if paused else None)
            for endpoint_id, (version, paused) in zip(endpoint_ids, found, strict=True)
        }

    def parse(
        self,
        config: bytes,
        *,
        failing_since: bytes | int | None = None,
        paused_until: bytes | int | None = None,
    ) -> Endpoint:
        """An endpoint from its stored configuration and breaker fields (epoch ms); a copy of its own."""
        endpoint = self._parse(config).model_copy()
        endpoint.failing_since = from_epoch_ms(failing_since) if failing_since else None
        endpoint.paused_until = from_epoch_ms(paused_until) if paused_until else None
        return endpoint

    def _parse(self, config: bytes) -> Endpoint:
        parsed = self._parsed.get(config)
        if parsed is None:
            if len(self._parsed) >= 10_000:  # configurations replaced long ago
                self._parsed.clear()
            parsed = self._parsed[config] = Endpoint.model_validate_json(config)
        return parsed

    async def for_client(self, client_id: str) -> list[Endpoint]:
        """Every endpoint of a client."""
        return await self.get_many(_ids(await self._redis.smembers(client_webhooks_key(client_id))))  # type: ignore[arg-type]

    async def for_clients(self, client_ids: list[str]) -> dict[str, list[Endpoint]]:
        """The endpoints of several clients, in two round trips."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for client_id in client_ids:
                pipe.smembers(client_webhooks_key(client_id))
            memberships = await pipe.execute()
        ids = {client_id: _ids(members) for client_id, members in zip(client_ids, memberships, strict=True)}
        found = {e.endpoint_id: e for e in await self.get_many(sorted({i for v in ids.values() for i in v}))}
        return {
            client_id: [found[i] for i in endpoint_ids if i in found]
            for client_id, endpoint_ids in ids.items()
        }

    async def all_ids(self) -> list[str]:
        """Every endpoint id."""
        return _ids(await self._redis.smembers(WEBHOOK_ENDPOINTS))  # type: ignore[arg-type]

    async def _change(
        self, endpoint_id: str, change: Callable[[Endpoint], Endpoint], reset_breaker: bool = False
    ) -> Endpoint:
        """Apply `change` to the stored configuration, retrying if anyone else changed it meanwhile.

        Workers (a 410, an unsafe target) and operators (rotation, enable) change endpoints concurrently;
        a plain read-then-write could drop, for instance, a secret just handed to a client.
        """
        key = webhook_endpoint_key(endpoint_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.hget(key, "config")
                    if raw is None:
                        raise LookupError(f"no endpoint {endpoint_id}")
                    changed = change(Endpoint.model_validate_json(raw))
                    pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
                    pipe.hset(key, "config", changed.model_dump_json(exclude=_BREAKER_FIELDS))
                    # Every relay instance compares versions before each claim and each attempt: the change
                    # applies to the very next attempt anywhere, though they cache configurations.
                    pipe.hincrby(key, "version", 1)
                    if reset_breaker:
                        pipe.hdel(key, "failures", "failing_since", "paused_until")
                    await pipe.execute()
                    break
                except WatchError:
                    continue
        if reset_breaker:
            # Enabled, or unpaused: what it has queued is due now (the index may hold it back or lack it).
            await self._index.touch([(endpoint_id, 0)])
        return changed

    async def set_state(self, endpoint_id: str, state: EndpointState, reason: str | None) -> Endpoint:
        """Enable or disable; enabling also clears the circuit breaker's record."""

        def change(endpoint: Endpoint) -> Endpoint:
            return endpoint.model_copy(update={"state": state, "state_reason": reason})

        return await self._change(endpoint_id, change, reset_breaker=state is EndpointState.ACTIVE)

    async def update(
        self,
        endpoint_id: str,
        url: str | None,
        description: str | None,
        status_filter: list[int] | None,
        clear_filter: bool = False,
        subscribed: Iterable[WebhookEventType] | None = None,
    ) -> Endpoint:
        """Change the URL, description, status filter or event types (None leaves a field as it is;
        `clear_filter` removes the filter, so that every status is delivered again)."""

        def change(endpoint: Endpoint) -> Endpoint:
            update: dict[str, object] = {
                "url": url,
                "description": description,
                "status_filter": status_filter,
                "event_types": chosen_event_types(subscribed) if subscribed is not None else None,
            }
            update = {k: v for k, v in update.items() if v is not None}
            if clear_filter:
                update["status_filter"] = None
            return endpoint.model_copy(update=update)

        return await self._change(endpoint_id, change)

    async def rotate_secret(self, endpoint_id: str, now: datetime, grace: timedelta) -> tuple[Endpoint, str]:
        """A new secret signs from now on; the one it replaces keeps signing until `now + grace` (none if
        `grace` is zero). Older ones stop at once: an endpoint has the current secret and at most one
        previous, as Stripe and Svix do, so that signatures stay few whatever the rotations."""
        secret = new_secret()

        def change(endpoint: Endpoint) -> Endpoint:
            current = [s for s in endpoint.secrets if s.expires_at is None]
            kept = [
                s.model_copy(update={"expires_at": now + grace}) for s in current[:1] if grace > timedelta()
            ]
            return endpoint.model_copy(update={"secrets": [SigningSecret(secret=secret), *kept]})

        return await self._change(endpoint_id, change), secret

    async def delete(self, endpoint: Endpoint) -> None:
        """Forget the endpoint and everything queued for it.

        Its per-order queues are those of the orders in `due`, which holds every order with a queued event
        (see `webhook_due_key`): no SCAN over the keyspace. An order queued while the deletion reads `due`
        makes it read again (WATCH), so that no queue is left behind.
        """
        endpoint_id = endpoint.endpoint_id
        due = webhook_due_key(endpoint_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(due)
                    orders: list[bytes] = await pipe.zrange(due, 0, -1)  # type: ignore[assignment]
                    pending = [webhook_pending_key(endpoint_id, order.decode()) for order in orders]
                    pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
                    pipe.delete(*webhook_fixed_keys(endpoint_id), *pending)
                    await pipe.execute()
                    break
                except WatchError:
                    continue
        await self._redis.srem(client_webhooks_key(endpoint.client_id), endpoint_id)
        await self._redis.srem(WEBHOOK_ENDPOINTS, endpoint_id)
        await self._index.remove(endpoint_id)


def _ids(members: set[bytes]) -> list[str]:
    return sorted(m.decode() for m in members)
