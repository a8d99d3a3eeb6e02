"""Webhook endpoint management over HTTP: the same store the relay and `orders webhooks` use."""

import logging
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query, Response, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from service.api.dependencies import ClientIdDep, DeliveriesDep, EndpointsDep, SettingsDep
from service.api.problems import AUTHENTICATED, Problem
from service.clock import utc_now
from service.config import ApiSettings
from service.relay.announcements import announce_state_change
from service.relay.recovery import recover_missed, recovery_horizon
from service.relay.safety import EndpointUrl, UnresolvableTarget, UnsafeTarget, check_endpoint_url
from service.store.webhook_deliveries import DeliveryStore
from service.store.webhook_endpoints import (
    DEFAULT_EVENT_TYPES,
    Endpoint,
    EndpointState,
    EndpointStore,
    WebhookEventType,
)

log = logging.getLogger(__name__)

webhooks = APIRouter(prefix="/v1/webhook-endpoints", tags=["webhooks"], responses=AUTHENTICATED)

StatusFilter = Annotated[
    list[int] | None, Field(description="Status codes of the status events to deliver; all when null.")
]
EventTypes = Annotated[
    list[WebhookEventType],
    Field(
        min_length=1,
        description="The types of event to deliver: `order_status_changed`, `command_rejected`, "
        "`endpoint_state_changed`, or any combination.",
        examples=[["order_status_changed", "command_rejected"]],
    ),
]


class EndpointBody(BaseModel):
    """A new endpoint."""

    model_config = ConfigDict(extra="forbid")

    url: EndpointUrl
    description: str = Field(default="", max_length=500)
    status_filter: StatusFilter = None
    event_types: EventTypes = Field(default_factory=lambda: list(DEFAULT_EVENT_TYPES))


class EndpointUpdate(BaseModel):
    """Fields to change; the ones left out stay."""

    model_config = ConfigDict(extra="forbid")

    url: EndpointUrl | None = None
    description: str | None = Field(default=None, max_length=500)
    status_filter: StatusFilter = None
    event_types: EventTypes | None = None


class EndpointView(BaseModel):
    """An endpoint as listed: never with its secrets."""

    endpoint_id: str
    url: str
    description: str
    status_filter: list[int] | None
    event_types: list[WebhookEventType]
    state: EndpointState = Field(description="PAUSED while the circuit breaker holds deliveries back.")
    state_reason: str | None
    paused_until: datetime | None
    consecutive_failures: int
    created_at: datetime


class CreatedEndpoint(EndpointView):
    """The new endpoint and its signing secret, shown this once."""

    secret: str


class Rotation(BaseModel):
    """How long the previous secret keeps signing."""

    model_config = ConfigDict(extra="forbid")

    grace_seconds: float = Field(default=24 * 3600, ge=0, le=30 * 24 * 3600)


class Recovery(BaseModel):
    """Since when to recover the events an endpoint missed."""

    model_config = ConfigDict(extra="forbid")

    since: AwareDatetime = Field(
        description="Recover the events that occurred at or after this time: at most the topics' retention "
        "ago (`ORDERS_TOPIC_RETENTION_MS`, 7 days by default)."
    )


class RecoveryStarted(BaseModel):
    """The recovery runs in the background: the missed events are queued as it reads them."""

    endpoint_id: str
    since: datetime


class Replay(BaseModel):
    """One dead delivery, or all that died since a moment."""

    model_config = ConfigDict(extra="forbid")

    event_id: str | None = None
    since: datetime | None = None


def _view(endpoint: Endpoint) -> EndpointView:
    return EndpointView.model_validate({**endpoint.public(), "state": endpoint.effective_state(utc_now())})


async def _owned(endpoints: EndpointStore, client_id: str, endpoint_id: str) -> Endpoint:
    endpoint = await endpoints.get(endpoint_id)
    if endpoint is None or endpoint.client_id != client_id:
        raise HTTPException(404, "no such webhook endpoint")
    return endpoint


async def _safe(settings: ApiSettings, url: str) -> str:
    """The URL to store, if the relay may call it: the check `orders webhooks add` makes too."""
    try:
        return await check_endpoint_url(
            url, require_https=settings.relay_require_https, allowed=settings.relay_allowed_networks
        )
    except (UnsafeTarget, UnresolvableTarget) as error:
        raise HTTPException(422, f"refused webhook URL: {error}") from None


@webhooks.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CreatedEndpoint,
    responses={409: {"model": Problem, "description": "`LIMIT_REACHED`: the client has its most endpoints."}},
)
async def create_endpoint(
    body: EndpointBody, client_id: ClientIdDep, endpoints: EndpointsDep, settings: SettingsDep
) -> CreatedEndpoint:
    """Register an endpoint; the response holds its signing secret, which is not shown again. 409
    `LIMIT_REACHED` when the client has `ORDERS_MAX_WEBHOOK_ENDPOINTS_PER_CLIENT` endpoints already."""
    url = await _safe(settings, str(body.url))
    endpoint = await endpoints.create(
        client_id,
        url,
        utc_now(),
        body.description,
        body.status_filter,
        body.event_types,
        limit=settings.max_webhook_endpoints_per_client,
    )
    return CreatedEndpoint(**_view(endpoint).model_dump(), secret=endpoint.secrets[0].secret)


@webhooks.get("", response_model=list[EndpointView])
async def list_endpoints(client_id: ClientIdDep, endpoints: EndpointsDep) -> list[EndpointView]:
    """The caller's endpoints."""
    return [_view(e) for e in await endpoints.for_client(client_id)]


@webhooks.get("/{endpoint_id}", response_model=EndpointView)
async def get_endpoint(endpoint_id: str, client_id: ClientIdDep, endpoints: EndpointsDep) -> EndpointView:
    """One endpoint."""
    return _view(await _owned(endpoints, client_id, endpoint_id))


@webhooks.patch("/{endpoint_id}", response_model=EndpointView)
async def update_endpoint(
    endpoint_id: str,
    body: EndpointUpdate,
    client_id: ClientIdDep,
    endpoints: EndpointsDep,
    settings: SettingsDep,
) -> EndpointView:
    """Change an endpoint's URL, description, status filter or event types."""
    await _owned(endpoints, client_id, endpoint_id)
    url = await _safe(settings, str(body.url)) if body.url is not None else None
    # `status_filter: null` sent explicitly clears the filter (every status is delivered); left out, it stays.
    clear_filter = "status_filter" in body.model_fields_set and body.status_filter is None
    changed = await endpoints.update(
        endpoint_id,
        url,
        body.description,
        body.status_filter,
        clear_filter=clear_filter,
        subscribed=body.event_types,
    )
    return _view(changed)


@webhooks.post("/{endpoint_id}/disable", response_model=EndpointView)
async def disable_endpoint(
    endpoint_id: str, client_id: ClientIdDep, endpoints: EndpointsDep, deliveries: DeliveriesDep
) -> EndpointView:
    """Stop deliveries (new events are not queued meanwhile); the client's other endpoints subscribed to
    `endpoint_state_changed` are told."""
    await _owned(endpoints, client_id, endpoint_id)
    reason = "disabled by the client"
    changed = await endpoints.set_state(endpoint_id, EndpointState.DISABLED, reason)
    await announce_state_change(
        endpoints, deliveries, changed, state=EndpointState.DISABLED, reason=reason, now=utc_now()
    )
    return _view(changed)


@webhooks.post("/{endpoint_id}/enable", response_model=EndpointView)
async def enable_endpoint(
    endpoint_id: str, client_id: ClientIdDep, endpoints: EndpointsDep, deliveries: DeliveriesDep
) -> EndpointView:
    """Resume deliveries, clearing the circuit breaker; the client's other endpoints subscribed to
    `endpoint_state_changed` are told."""
    await _owned(endpoints, client_id, endpoint_id)
    changed = await endpoints.set_state(endpoint_id, EndpointState.ACTIVE, None)
    await announce_state_change(
        endpoints,
        deliveries,
        changed,
        state=EndpointState.ACTIVE,
        reason="enabled by the client",
        now=utc_now(),
    )
    return _view(changed)


@webhooks.delete("/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_endpoint(endpoint_id: str, client_id: ClientIdDep, endpoints: EndpointsDep) -> Response:
    """Remove the endpoint and everything queued for it."""
    await endpoints.delete(await _owned(endpoints, client_id, endpoint_id))
    return Response(status_code=204)


@webhooks.post("/{endpoint_id}/rotate-secret", response_model=dict[str, str])
async def rotate_secret(
    endpoint_id: str, body: Rotation, client_id: ClientIdDep, endpoints: EndpointsDep
) -> dict[str, str]:
    """A new secret signs from now on; the old one keeps signing for the grace period."""
    await _owned(endpoints, client_id, endpoint_id)
    grace = timedelta(seconds=body.grace_seconds)
    _, secret = await endpoints.rotate_secret(endpoint_id, utc_now(), grace)
    return {"endpoint_id": endpoint_id, "secret": secret}


@webhooks.get("/{endpoint_id}/attempts", response_model=list[dict[str, Any]])
async def list_attempts(
    endpoint_id: str,
    client_id: ClientIdDep,
    endpoints: EndpointsDep,
    deliveries: DeliveriesDep,
    event_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, str]]:
    """The newest delivery attempts, optionally of one event."""
    await _owned(endpoints, client_id, endpoint_id)
    return await deliveries.attempts(endpoint_id, limit, event_id)


@webhooks.post("/{endpoint_id}/replay", response_model=dict[str, int])
async def replay(
    endpoint_id: str, body: Replay, client_id: ClientIdDep, endpoints: EndpointsDep, deliveries: DeliveriesDep
) -> dict[str, int]:
    """Queue dead deliveries again: one event, or all that died since `since`."""
    await _owned(endpoints, client_id, endpoint_id)
    if body.event_id is not None:
        return {"replayed": await deliveries.replay(endpoint_id, [body.event_id], utc_now())}
    if body.since is None:
        raise HTTPException(422, "give event_id or since")
    return {"replayed": await deliveries.replay_since(endpoint_id, body.since, utc_now())}


@webhooks.post("/{endpoint_id}/recover", status_code=status.HTTP_202_ACCEPTED, response_model=RecoveryStarted)
async def recover(
    endpoint_id: str,
    body: Recovery,
    client_id: ClientIdDep,
    endpoints: EndpointsDep,
    deliveries: DeliveriesDep,
    settings: SettingsDep,
    background: BackgroundTasks,
) -> RecoveryStarted:
    """Queue again the client's events since a time that the endpoint wants and has not been delivered
    (missed while it was disabled, say): each is sent once, each order's in sequence. Idempotent."""
    endpoint = await _owned(endpoints, client_id, endpoint_id)
    now = utc_now()
    horizon = recovery_horizon(settings, now)
    if body.since < horizon:
        raise HTTPException(
            422,
            f"events can be recovered since {horizon.isoformat()} at the earliest "
            "(ORDERS_TOPIC_RETENTION_MS)",
        )
    background.add_task(_recover_in_background, settings, deliveries, endpoint, body.since, now)
    return RecoveryStarted(endpoint_id=endpoint_id, since=body.since)


async def _recover_in_background(
    settings: ApiSettings, deliveries: DeliveryStore, endpoint: Endpoint, since: datetime, now: datetime
) -> None:
    extra = {"endpoint_id": endpoint.endpoint_id, "client_id": endpoint.client_id}
    try:
        recovered = await recover_missed(settings, deliveries, endpoint, since=since, now=now)
    except Exception:
        log.exception("api.recovery_failed", extra=extra)  # the caller may ask again: it is idempotent
        return
    log.info("api.recovered", extra=extra | {"read": recovered.read, "queued": recovered.queued})
