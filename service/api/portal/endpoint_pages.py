"""A client's endpoint pages: endpoints, their attempts, dead deliveries, replay and recovery, the catalog."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import urlencode

from fastapi import BackgroundTasks, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException

from contracts.events import EndpointStateChanged
from service.api import webhooks as api
from service.api.dependencies import (
    DeliveriesDep,
    EndpointsDep,
    OrdersDep,
    SettingsDep,
)
from service.api.portal.common import (
    ClientSession,
    PortalError,
    checked_form,
    page,
    pages,
    problem_text,
    valid_id,
)
from service.clock import utc_now
from service.relay.sender import signature_headers
from service.store.capped_sets import LimitReached
from service.store.portal_sessions import PortalSession
from service.store.webhook_deliveries import QueuedEvent
from service.store.webhook_endpoints import DEFAULT_EVENT_TYPES, WebhookEventType


@pages.get("/")
async def home(request: Request, session: ClientSession, endpoints: EndpointsDep) -> HTMLResponse:
    """The client's endpoints, the form that adds one, and the order and command look-ups."""
    client_id = cast(str, session.client_id)
    views = await api.list_endpoints(client_id, endpoints)
    return page(
        request, "home.html", session, endpoints=views, event_types=list(WebhookEventType), defaults=DEFAULTS
    )


DEFAULTS = {t.value for t in DEFAULT_EVENT_TYPES}


def _endpoint_fields(form: FormData) -> dict[str, Any]:
    codes = str(form.get("status_filter") or "").replace(",", " ").split()
    return {
        "url": str(form.get("url") or ""),
        "description": str(form.get("description") or ""),
        "status_filter": [int(c) if c.isdigit() else c for c in codes] or None,
        "event_types": [str(t) for t in form.getlist("event_types")],
    }


@pages.post("/endpoints")
async def add_endpoint(
    request: Request, session: ClientSession, endpoints: EndpointsDep, settings: SettingsDep
) -> HTMLResponse:
    """Registers an endpoint through the API's own route (SSRF checks, limits) and shows its secret once."""
    form = await checked_form(request, session)
    client_id = cast(str, session.client_id)
    try:
        body = api.EndpointBody.model_validate(_endpoint_fields(form))
        created = await api.create_endpoint(body, client_id, endpoints, settings)
    except (HTTPException, LimitReached, ValidationError) as error:
        views = await api.list_endpoints(client_id, endpoints)
        return page(
            request,
            "home.html",
            session,
            422,
            endpoints=views,
            event_types=list(WebhookEventType),
            defaults=DEFAULTS,
            error=f"The endpoint was not added: {problem_text(error)}",
        )
    return page(request, "secret.html", session, endpoint=created, secret=created.secret, created=True)


async def _owned(session: PortalSession, endpoints: EndpointsDep, endpoint_id: str) -> api.EndpointView:
    try:
        return await api.get_endpoint(endpoint_id, cast(str, session.client_id), endpoints)
    except HTTPException:
        raise PortalError(404, "No such webhook endpoint.") from None


NOTICES = {
    "updated": "The endpoint was changed.",
    "disabled": "The endpoint is disabled: no deliveries until it is enabled.",
    "enabled": "The endpoint is enabled.",
    "test": "A test event is queued; its attempt appears below once the relay sends it.",
    "replayed": "The dead deliveries chosen are queued again.",
    "recovering": "Recovery started: the missed events are queued as they are read.",
}
"""The only texts a redirect's `notice` may show: the query names one, it never carries text."""


@pages.get("/endpoints/{endpoint_id}")
async def endpoint_page(
    endpoint_id: str,
    request: Request,
    session: ClientSession,
    endpoints: EndpointsDep,
    deliveries: DeliveriesDep,
    status: str = "",
    order_id: str = "",
    notice: str = "",
    error: str = "",
) -> HTMLResponse:
    """One endpoint: its settings and actions, its attempts (filtered), its dead deliveries."""
    client_id = cast(str, session.client_id)
    view = await _owned(session, endpoints, endpoint_id)
    attempts = await api.list_attempts(endpoint_id, client_id, endpoints, deliveries, None, 1000)
    shown = [a for a in attempts if _matches(a, status, order_id)][:200]
    dead = await deliveries.dead(endpoint_id)
    return page(
        request,
        "endpoint.html",
        session,
        endpoint=view,
        attempts=shown,
        total_attempts=len(attempts),
        dead=dead,
        chosen=status,
        order_id=order_id,
        notice=NOTICES.get(notice),
        error=ERRORS.get(error),
        event_types=list(WebhookEventType),
    )


ERRORS = {
    "since": "Give a time (UTC).",
    "horizon": "Events can be recovered since the topics' retention (ORDERS_TOPIC_RETENTION_MS) at most.",
    "nothing": "No dead delivery matched.",
}


def _matches(attempt: dict[str, str], status: str, order_id: str) -> bool:
    if order_id and attempt.get("order_id") != order_id:
        return False
    code = attempt.get("status", "")
    if status == "delivered":
        return code.startswith("2")
    if status == "failed":
        return not code.startswith("2")
    return not status or code == status


def _back(endpoint_id: str, **query: str) -> RedirectResponse:
    suffix = f"?{urlencode(query)}" if query else ""
    return RedirectResponse(f"/portal/endpoints/{endpoint_id}{suffix}", status_code=303)


@pages.get("/endpoints/{endpoint_id}/attempt")
async def attempt_page(
    endpoint_id: str,
    request: Request,
    session: ClientSession,
    endpoints: EndpointsDep,
    deliveries: DeliveriesDep,
    orders: OrdersDep,
    event_id: str,
    attempt: str,
) -> HTMLResponse:
    """One attempt: the request as sent (headers and body), the answer's status and excerpt, the latency."""
    client_id = cast(str, session.client_id)
    view = await _owned(session, endpoints, endpoint_id)
    found = [
        a
        for a in await api.list_attempts(endpoint_id, client_id, endpoints, deliveries, event_id, 1000)
        if a.get("attempt") == attempt
    ]
    if not found:
        raise PortalError(404, "No such attempt (the log keeps the newest attempts of each endpoint).")
    record = found[0]
    body = await _request_body(record, client_id, endpoint_id, orders, deliveries)
    headers: dict[str, str] = json.loads(record.get("request_headers") or "{}")
    if headers:
        headers["webhook-signature"] = "v1,… (not kept)"
    elif body is not None:
        # An attempt logged before the relay kept its headers: rebuilt, with the timestamp to the second.
        stored = await endpoints.get(endpoint_id)
        if stored is not None:
            at = datetime.fromisoformat(record["at"])
            sent = at - timedelta(milliseconds=int(record.get("latency_ms") or 0))
            headers = signature_headers(stored, event_id, body, sent)
            # Derived from the signing secrets at the time of the attempt: not kept, and not recomputed here.
            headers["webhook-signature"] = "v1,… (not kept)"
    return page(
        request,
        "attempt.html",
        session,
        endpoint=view,
        attempt=record,
        headers=headers,
        body=_pretty(body) if body is not None else None,
    )


async def _request_body(
    record: dict[str, str], client_id: str, endpoint_id: str, orders: OrdersDep, deliveries: DeliveriesDep
) -> bytes | None:
    """The body the attempt sent: a status event as the order's history keeps it (byte for byte what was
    published, and sent), or the event a dead delivery keeps."""
    sequence = record.get("sequence", "")
    order_id = record.get("order_id", "")
    if sequence.isdigit() and order_id and valid_id(order_id):
        _, events = await orders.history(client_id, order_id, start=int(sequence) - 1, count=1)
        if events:
            return events[0]
    dead = (await deliveries.dead(endpoint_id)).get(record.get("event_id", ""))
    return json.dumps(dead["event"]).encode() if dead else None


def _pretty(body: bytes) -> str:
    try:
        return json.dumps(json.loads(body), indent=2)
    except ValueError:
        return body.decode("utf-8", "replace")


@pages.post("/endpoints/{endpoint_id}/edit")
async def edit_endpoint(
    endpoint_id: str, request: Request, session: ClientSession, endpoints: EndpointsDep, settings: SettingsDep
) -> Response:
    form = await checked_form(request, session)
    await _owned(session, endpoints, endpoint_id)
    fields = _endpoint_fields(form)
    try:
        update = api.EndpointUpdate.model_validate(fields)
        await api.update_endpoint(endpoint_id, update, cast(str, session.client_id), endpoints, settings)
    except (HTTPException, ValidationError) as error:
        raise PortalError(422, f"The endpoint was not changed: {problem_text(error)}") from None
    return _back(endpoint_id, notice="updated")


@pages.post("/endpoints/{endpoint_id}/disable")
async def disable(
    endpoint_id: str,
    request: Request,
    session: ClientSession,
    endpoints: EndpointsDep,
    deliveries: DeliveriesDep,
) -> Response:
    await checked_form(request, session)
    await _owned(session, endpoints, endpoint_id)
    await api.disable_endpoint(endpoint_id, cast(str, session.client_id), endpoints, deliveries)
    return _back(endpoint_id, notice="disabled")


@pages.post("/endpoints/{endpoint_id}/enable")
async def enable(
    endpoint_id: str,
    request: Request,
    session: ClientSession,
    endpoints: EndpointsDep,
    deliveries: DeliveriesDep,
) -> Response:
    await checked_form(request, session)
    await _owned(session, endpoints, endpoint_id)
    await api.enable_endpoint(endpoint_id, cast(str, session.client_id), endpoints, deliveries)
    return _back(endpoint_id, notice="enabled")


@pages.post("/endpoints/{endpoint_id}/delete")
async def delete(
    endpoint_id: str, request: Request, session: ClientSession, endpoints: EndpointsDep
) -> Response:
    await checked_form(request, session)
    await _owned(session, endpoints, endpoint_id)
    await api.delete_endpoint(endpoint_id, cast(str, session.client_id), endpoints)
    return RedirectResponse("/portal/", status_code=303)


@pages.post("/endpoints/{endpoint_id}/rotate")
async def rotate(
    endpoint_id: str, request: Request, session: ClientSession, endpoints: EndpointsDep
) -> HTMLResponse:
    """A new secret, shown on this page once; the previous one keeps signing for the grace chosen."""
    form = await checked_form(request, session)
    view = await _owned(session, endpoints, endpoint_id)
    try:
        rotation = api.Rotation.model_validate({"grace_seconds": form.get("grace_seconds") or 24 * 3600})
    except ValidationError as error:
        raise PortalError(422, f"The secret was not rotated: {problem_text(error)}") from None
    rotated = await api.rotate_secret(endpoint_id, rotation, cast(str, session.client_id), endpoints)
    return page(request, "secret.html", session, endpoint=view, secret=rotated["secret"], created=False)


@pages.post("/endpoints/{endpoint_id}/test")
async def send_test_event(
    endpoint_id: str,
    request: Request,
    session: ClientSession,
    endpoints: EndpointsDep,
    deliveries: DeliveriesDep,
) -> Response:
    """Queues an `endpoint_state_changed` event naming the endpoint itself with its present state, for it
    alone, whatever it subscribes to: a delivery signed, retried and logged like any other."""
    await checked_form(request, session)
    view = await _owned(session, endpoints, endpoint_id)
    now = utc_now()
    event = EndpointStateChanged(
        event_id=f"test-{now.strftime('%Y%m%dT%H%M%S%f')}-{endpoint_id}",
        client_id=cast(str, session.client_id),
        endpoint_id=endpoint_id,
        url=view.url,
        state=view.state.value,
        reason="test event sent from the portal",
        paused_until=view.paused_until,
        occurred_at=now,
    )
    await deliveries.enqueue([QueuedEvent.of(endpoint_id, event, event.model_dump_json().encode())], now)
    return _back(endpoint_id, notice="test")


def _since(form: FormData) -> datetime | None:
    """A `datetime-local` input, read as UTC (the page says so)."""
    try:
        value = datetime.fromisoformat(str(form.get("since") or ""))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@pages.post("/endpoints/{endpoint_id}/replay")
async def replay(
    endpoint_id: str,
    request: Request,
    session: ClientSession,
    endpoints: EndpointsDep,
    deliveries: DeliveriesDep,
) -> Response:
    """One dead delivery (`event_id`), or all that died since a time (`since`)."""
    form = await checked_form(request, session)
    await _owned(session, endpoints, endpoint_id)
    event_id = form.get("event_id")
    if isinstance(event_id, str) and event_id:
        body = api.Replay(event_id=event_id)
    elif (since := _since(form)) is not None:
        body = api.Replay(since=since)
    else:
        return _back(endpoint_id, error="since")
    done = await api.replay(endpoint_id, body, cast(str, session.client_id), endpoints, deliveries)
    return _back(endpoint_id, notice="replayed") if done["replayed"] else _back(endpoint_id, error="nothing")


@pages.post("/endpoints/{endpoint_id}/recover")
async def recover(
    endpoint_id: str,
    request: Request,
    session: ClientSession,
    endpoints: EndpointsDep,
    deliveries: DeliveriesDep,
    settings: SettingsDep,
) -> Response:
    """The API's recovery since a time, run in the background after the answer like the API's."""
    form = await checked_form(request, session)
    await _owned(session, endpoints, endpoint_id)
    since = _since(form)
    if since is None:
        return _back(endpoint_id, error="since")
    background = BackgroundTasks()
    try:
        await api.recover(
            endpoint_id,
            api.Recovery(since=since),
            cast(str, session.client_id),
            endpoints,
            deliveries,
            settings,
            background,
        )
    except HTTPException:
        return _back(endpoint_id, error="horizon")
    response = _back(endpoint_id, notice="recovering")
    response.background = background
    return response
