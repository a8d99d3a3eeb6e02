"""The portal's pages: server-rendered HTML forms over the same functions the JSON API's routes run.

Identity comes from the session cookie only. Every client page reads through the JSON API's route functions
(or the stores they use) with the session's client id, so an id of another client is answered like a
missing one, as the API answers it. Every POST carries the session's CSRF token in a hidden field.
"""

import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, cast
from urllib.parse import urlencode

from fastapi import APIRouter, BackgroundTasks, Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException

from contracts.base import ClientIdentifier
from contracts.events import EndpointStateChanged
from contracts.limits import EVENTS_PER_PAGE
from service.api import webhooks as api
from service.api.command_outcomes import get_command_outcome
from service.api.dependencies import (
    ClientIdDep,
    DeliveriesDep,
    EndpointsDep,
    OrdersDep,
    OutcomesDep,
    SettingsDep,
)
from service.api.portal.charts import Step, bar_chart, line_chart, timeline
from service.api.portal.figures import RATES, MetricsSampler, catalog, consumer_lag, recent_dead_letters
from service.api.problems import AUTHENTICATED
from service.api.routes import details
from service.clock import utc_now
from service.config import ApiSettings
from service.relay.sender import signature_headers
from service.store.capped_sets import LimitReached
from service.store.portal_sessions import PortalSession, PortalSessions
from service.store.webhook_deliveries import QueuedEvent
from service.store.webhook_endpoints import DEFAULT_EVENT_TYPES, EndpointState, WebhookEventType

COOKIE = "orders_portal"
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")

pages = APIRouter(prefix="/portal", include_in_schema=False)


class PortalError(Exception):
    """Answered as an HTML page with this status and message (never with the request's secrets)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class PortalState:
    """What the pages keep beside the API's resources: the sessions and the metrics readings."""

    def __init__(self, sessions: PortalSessions, sampler: MetricsSampler) -> None:
        self.sessions = sessions
        self.sampler = sampler


def _state(request: Request) -> PortalState:
    return cast(PortalState, request.app.state.portal)


async def _session(request: Request) -> PortalSession | None:
    token = request.cookies.get(COOKIE)
    return await _state(request).sessions.get(token) if token else None


async def client_session(request: Request) -> PortalSession:
    """The session of a client's pages; 401 without one (an operator session is not one)."""
    session = await _session(request)
    if session is None or session.client_id is None:
        raise PortalError(401, "You are not signed in. Ask for a new portal link.")
    return session


async def operator_session(request: Request) -> PortalSession:
    """The session of the operator's pages; 401 without one."""
    session = await _session(request)
    if session is None or not session.operator:
        raise PortalError(401, "The operator pages need the operator login.")
    return session


ClientSession = Annotated[PortalSession, Depends(client_session)]
OperatorSession = Annotated[PortalSession, Depends(operator_session)]


async def checked_form(request: Request, session: PortalSession) -> FormData:
    """The form, if it carries the session's CSRF token; 403 otherwise."""
    form = await request.form()
    token = form.get("csrf")
    if not isinstance(token, str) or not hmac.compare_digest(token.encode(), session.csrf.encode()):
        raise PortalError(403, "This form has expired or did not come from the portal. Reload the page.")
    return form


def page(
    request: Request, name: str, session: PortalSession | None, status: int = 200, **context: Any
) -> HTMLResponse:
    """A rendered page; `csrf` is the session's token for the forms it holds."""
    return templates.TemplateResponse(
        request,
        name,
        {"session": session, "csrf": session.csrf if session else "", **context},
        status_code=status,
    )


def _secure(request: Request, settings: ApiSettings) -> bool:
    return request.url.scheme == "https" or settings.portal_secure_cookies


def _signed_in(
    request: Request, settings: ApiSettings, session: PortalSession, target: str, who: str
) -> HTMLResponse:
    """A page that sets the session cookie and moves on to `target`. A page rather than a redirect: a
    SameSite=Strict cookie set while following a link from elsewhere (a mail) is not sent on a redirect of
    that same navigation, but it is on the navigation this page starts."""
    response = page(request, "signed_in.html", session, target=target, who=who)
    response.set_cookie(
        COOKIE,
        session.token,
        max_age=settings.portal_session_ttl_seconds,
        path="/portal",
        httponly=True,
        secure=_secure(request, settings),
        samesite="strict",
    )
    return response


_ID: TypeAdapter[str] = TypeAdapter(ClientIdentifier)


def _valid_id(value: str) -> bool:
    try:
        _ID.validate_python(value)
    except ValidationError:
        return False
    return True


def _problem(error: HTTPException | LimitReached | ValidationError) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}"
            for e in error.errors(include_url=False, include_input=False)
        )
    if isinstance(error, LimitReached):
        return f"{error}: remove one before adding another"
    return str(error.detail)


# --- Opening a link, signing in and out ---------------------------------------------------------------


@pages.get("/open/{token}")
async def open_link(token: str, request: Request, settings: SettingsDep) -> HTMLResponse:
    """Opens the session of a link, once; an unknown, expired or used link gets nothing."""
    session = await _state(request).sessions.open_link(token)
    if session is None:
        raise PortalError(404, "This link has expired or has been used. Ask for a new one.")
    return _signed_in(request, settings, session, "/portal/", f"client {session.client_id}")


@pages.get("/operator/login")
async def operator_login_page(request: Request, settings: SettingsDep) -> HTMLResponse:
    if settings.portal_operator_password is None:
        raise PortalError(404, "The operator login is off (ORDERS_PORTAL_OPERATOR_PASSWORD is not set).")
    return page(request, "operator_login.html", None)


@pages.post("/operator/login")
async def operator_login(request: Request, settings: SettingsDep) -> HTMLResponse:
    """The operator's password from the setting, compared in constant time."""
    expected = settings.portal_operator_password
    if expected is None:
        raise PortalError(404, "The operator login is off (ORDERS_PORTAL_OPERATOR_PASSWORD is not set).")
    sessions = _state(request).sessions
    if await sessions.operator_locked():
        message = "Too many wrong passwords: try again in a minute."
        return page(request, "operator_login.html", None, 429, error=message)
    given = (await request.form()).get("password")
    if not isinstance(given, str) or not hmac.compare_digest(
        given.encode(), expected.get_secret_value().encode()
    ):
        await sessions.operator_failed()
        return page(request, "operator_login.html", None, 401, error="Wrong password.")
    session = await sessions.start_operator()
    return _signed_in(request, settings, session, "/portal/operator", "the operator")


@pages.post("/logout")
async def logout(request: Request) -> Response:
    session = await _session(request)
    if session is None:
        raise PortalError(401, "You are not signed in.")
    await checked_form(request, session)
    await _state(request).sessions.end(session.token)
    response = page(request, "signed_out.html", None)
    response.delete_cookie(COOKIE, path="/portal")
    return response


# --- Client pages ------------------------------------------------------------------------------------


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
            error=f"The endpoint was not added: {_problem(error)}",
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
    if sequence.isdigit() and order_id and _valid_id(order_id):
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
        raise PortalError(422, f"The endpoint was not changed: {_problem(error)}") from None
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
        raise PortalError(422, f"The secret was not rotated: {_problem(error)}") from None
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


@pages.get("/events")
async def event_catalog(request: Request, session: ClientSession) -> HTMLResponse:
    """Each webhook event type with its schema and an example, from the contract's schemas."""
    return page(request, "events.html", session, catalog=catalog())


@pages.get("/orders")
async def order_page(
    request: Request, session: ClientSession, orders: OrdersDep, order_id: str = ""
) -> HTMLResponse:
    """An order's ONE Order structure and its history as a timeline; another client's order is missing."""
    client_id = cast(str, session.client_id)
    order = await orders.get(client_id, order_id) if order_id and _valid_id(order_id) else None
    if order is None:
        status = 404 if order_id else 200
        return page(request, "order.html", session, status, order_id=order_id, order=None)
    events: list[dict[str, Any]] = []
    while True:  # the history in pages of the API's size, as GET /v1/orders/{id}/events reads it
        _, batch = await orders.history(client_id, order_id, start=len(events), count=EVENTS_PER_PAGE)
        events += [json.loads(e) for e in batch]
        if len(batch) < EVENTS_PER_PAGE:
            break
    steps = [Step(e["sequence"], e["status_name"], e["occurred_at"], e.get("reason")) for e in events]
    view = details(order)
    return page(
        request,
        "order.html",
        session,
        order_id=order_id,
        order=view,
        structure=json.dumps(view.order.model_dump(mode="json"), indent=2),
        timeline=timeline(steps),
        events=events,
    )


@pages.get("/commands")
async def command_page(
    request: Request, session: ClientSession, outcomes: OutcomesDep, command_id: str = ""
) -> HTMLResponse:
    """What became of a command, by the API's own route."""
    outcome = None
    if command_id:
        try:
            outcome = await get_command_outcome(command_id, cast(str, session.client_id), outcomes)
        except HTTPException:
            outcome = None
    status = 404 if command_id and outcome is None else 200
    shown = json.dumps(outcome.model_dump(mode="json"), indent=2) if outcome else None
    return page(request, "command.html", session, status, command_id=command_id, outcome=outcome, shown=shown)


# --- Operator pages ----------------------------------------------------------------------------------


@pages.get("/operator")
async def operator_home(
    request: Request,
    session: OperatorSession,
    settings: SettingsDep,
    orders: OrdersDep,
    endpoints: EndpointsDep,
    deliveries: DeliveriesDep,
) -> HTMLResponse:
    """Dead letters decoded, anomalies, and every client's endpoints by state."""
    kafka_error = None
    try:
        letters = await recent_dead_letters(settings)
    except Exception as error:  # Kafka unreachable or slow: say so, show the rest
        letters, kafka_error = [], type(error).__name__
    everything = await endpoints.get_many(await endpoints.all_ids())
    now = utc_now()
    by_state: dict[str, list[Any]] = {state.value: [] for state in EndpointState}
    for endpoint in sorted(everything, key=lambda e: (e.client_id, e.endpoint_id)):
        by_state[endpoint.effective_state(now).value].append(endpoint)
    backlogs = await deliveries.backlogs([e.endpoint_id for e in everything])
    return page(
        request,
        "operator.html",
        session,
        letters=letters,
        kafka_error=kafka_error,
        anomalies=await orders.recent_anomalies(50),
        by_state=by_state,
        backlogs=backlogs,
    )


@pages.get("/operator/metrics")
async def operator_metrics(request: Request, session: OperatorSession, settings: SettingsDep) -> HTMLResponse:
    """The key figures as charts: consumer lag (from Kafka), rates between readings of this page, and the
    webhook attempts' latency histogram (from the metrics the processes expose)."""
    sampler = _state(request).sampler
    reading = await sampler.read()
    lag_error = None
    try:
        lag = await consumer_lag(settings)
        lag_chart = bar_chart("Consumer lag (records not yet read)", list(lag.items()))
    except Exception as error:  # Kafka unreachable or slow
        lag_chart, lag_error = None, type(error).__name__
    rates = {name: line_chart(RATES[name], points, "/s") for name, points in sampler.rates().items()}
    buckets = sorted(reading.latency_buckets.items(), key=lambda b: float(b[0]))
    per_bucket, previous = [], 0.0
    for le, cumulative in buckets:
        per_bucket.append((f"≤ {le} s" if le != "+Inf" else "slower", cumulative - previous))
        previous = cumulative
    return page(
        request,
        "metrics.html",
        session,
        lag_error=lag_error,
        lag_chart=lag_chart,
        rates=rates,
        readings=len(sampler.readings),
        totals=reading.totals,
        latency=bar_chart("Webhook attempt latency (attempts per bucket)", per_bucket),
        sources=reading.sources,
    )


# --- The JSON route that issues links -------------------------------------------------------------------


class LinkRequest(BaseModel):
    """How long the link may be opened (at most `ORDERS_PORTAL_LINK_TTL_SECONDS`)."""

    model_config = ConfigDict(extra="forbid")

    ttl_seconds: int | None = Field(default=None, ge=30, le=7 * 24 * 3600)


class PortalLinkView(BaseModel):
    """A single-use portal link; it opens a session of the caller's own pages."""

    url: str
    expires_at: datetime


portal_sessions = APIRouter(prefix="/v1/portal-sessions", tags=["portal"], responses=AUTHENTICATED)


def portal_url(settings: ApiSettings, token: str) -> str:
    """The link that opens `token`, under `ORDERS_PORTAL_BASE_URL` (the API's own address when unset)."""
    base = settings.portal_base_url.rstrip("/") or f"http://{settings.api_host}:{settings.api_port}"
    return f"{base}/portal/open/{token}"


def link_ttl(settings: ApiSettings, asked: int | None) -> int:
    """The asked lifetime, never longer than the setting."""
    return min(asked or settings.portal_link_ttl_seconds, settings.portal_link_ttl_seconds)


@portal_sessions.post("", status_code=201, response_model=PortalLinkView)
async def create_portal_link(
    request: Request, client_id: ClientIdDep, settings: SettingsDep, body: LinkRequest | None = None
) -> PortalLinkView:
    """A short-lived single-use link to the portal for the caller's client (`orders portal link` too)."""
    ttl = link_ttl(settings, body.ttl_seconds if body else None)
    link = await _state(request).sessions.issue_link(client_id, ttl, utc_now())
    return PortalLinkView(url=portal_url(settings, link.token), expires_at=link.expires_at)
