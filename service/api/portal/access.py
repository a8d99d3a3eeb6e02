"""Opening the portal: single-use links (the JSON route that issues them, and opening one), the operator's
login, signing out."""

import hmac
from datetime import datetime

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from service.api.dependencies import (
    ClientIdDep,
    SettingsDep,
)
from service.api.portal.common import (
    COOKIE,
    PortalError,
    checked_form,
    current_session,
    page,
    pages,
    portal_state_of,
)
from service.api.problems import AUTHENTICATED
from service.clock import utc_now
from service.config import ApiSettings
from service.store.portal_sessions import PortalSession


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


@pages.get("/open/{token}")
async def open_link(token: str, request: Request, settings: SettingsDep) -> HTMLResponse:
    """Opens the session of a link, once; an unknown, expired or used link gets nothing."""
    session = await portal_state_of(request).sessions.open_link(token)
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
    sessions = portal_state_of(request).sessions
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
    session = await current_session(request)
    if session is None:
        raise PortalError(401, "You are not signed in.")
    await checked_form(request, session)
    await portal_state_of(request).sessions.end(session.token)
    response = page(request, "signed_out.html", None)
    response.delete_cookie(COOKIE, path="/portal")
    return response


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
    link = await portal_state_of(request).sessions.issue_link(client_id, ttl, utc_now())
    return PortalLinkView(url=portal_url(settings, link.token), expires_at=link.expires_at)
