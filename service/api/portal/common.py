"""What every portal page shares: the router, the session a page is for, CSRF-checked forms, rendering.

Identity comes from the session cookie only. Every client page reads through the JSON API's route functions
(or the stores they use) with the session's client id, so an id of another client is answered like a
missing one, as the API answers it. Every POST carries the session's CSRF token in a hidden field.
"""

import hmac
from pathlib import Path
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException

from contracts.base import ClientIdentifier
from service.api.portal.figures import MetricsSampler
from service.store.capped_sets import LimitReached
from service.store.portal_sessions import PortalSession, PortalSessions

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


def portal_state_of(request: Request) -> PortalState:
    return cast(PortalState, request.app.state.portal)


async def current_session(request: Request) -> PortalSession | None:
    token = request.cookies.get(COOKIE)
    return await portal_state_of(request).sessions.get(token) if token else None


async def client_session(request: Request) -> PortalSession:
    """The session of a client's pages; 401 without one (an operator session is not one)."""
    session = await current_session(request)
    if session is None or session.client_id is None:
        raise PortalError(401, "You are not signed in. Ask for a new portal link.")
    return session


async def operator_session(request: Request) -> PortalSession:
    """The session of the operator's pages; 401 without one."""
    session = await current_session(request)
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


_ID: TypeAdapter[str] = TypeAdapter(ClientIdentifier)


def valid_id(value: str) -> bool:
    try:
        _ID.validate_python(value)
    except ValidationError:
        return False
    return True


def problem_text(error: HTTPException | LimitReached | ValidationError) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}"
            for e in error.errors(include_url=False, include_input=False)
        )
    if isinstance(error, LimitReached):
        return f"{error}: remove one before adding another"
    return str(error.detail)
