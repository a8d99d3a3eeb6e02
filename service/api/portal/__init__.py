"""The portal: HTML pages served by `orders api` for endpoint owners, clients following orders, and operators.

`install_portal` adds its routes, static files and error pages to the API app; `portal_state` is built in
the app's lifespan, beside the API's resources. See docs/portal.md.
"""

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from redis.asyncio import Redis

from service.api.portal.figures import MetricsSampler
from service.api.portal.routes import HERE, PortalError, PortalState, page, pages, portal_sessions
from service.config import ApiSettings
from service.store.portal_sessions import PortalSessions

SECURITY_HEADERS = {
    # Nothing but the portal's own files: no inline script anywhere, so an injected one would not run.
    "content-security-policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    # A link's token is in its path: never sent on to another site.
    "referrer-policy": "no-referrer",
    # Pages may show a secret once: not kept in caches, nor shown again by the back button from a cache.
    "cache-control": "no-store",
}


def portal_state(settings: ApiSettings, redis: Redis) -> PortalState:
    """The sessions store and the metrics readings of one API process."""
    return PortalState(
        PortalSessions(redis, settings.portal_session_ttl_seconds),
        MetricsSampler(settings.portal_metrics_urls),
    )


def install_portal(app: FastAPI) -> None:
    """Add the pages, their static files and their error pages to `app`."""
    app.include_router(pages)
    app.include_router(portal_sessions)
    app.mount("/portal/static", StaticFiles(directory=HERE / "static"), name="portal-static")

    @app.exception_handler(PortalError)
    async def portal_error(request: Request, error: PortalError) -> Response:
        return page(request, "error.html", None, error.status, message=error.message)

    @app.middleware("http")
    async def portal_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        if request.url.path.startswith("/portal"):
            response.headers.update(SECURITY_HEADERS)
        return response
