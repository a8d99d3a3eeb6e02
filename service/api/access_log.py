"""The API's access log: one line per request with its method, path and status, and nothing else of it.

uvicorn's own access log writes the query string, so an API key sent as `?api_key=` (which the API refuses)
would reach the log; headers, `Authorization` among them, are never read here either.
"""

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("service.api.access")

_MAX_PATH_CHARS = 256
"""A longer path is cut: it is a client's input, and one line per request should stay a line."""

_PORTAL_LINK = "/portal/open/"
"""A portal link carries its token in its path (docs/portal.md): logged without it."""


def _loggable(path: str) -> str:
    if path.startswith(_PORTAL_LINK):
        return _PORTAL_LINK + "…"
    return path[:_MAX_PATH_CHARS]


class AccessLog:
    """ASGI middleware: an `http.request` line once each request is answered (or failed)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app raised before it began its response

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, send_noting_status)
        finally:
            log.info(
                "http.request",
                extra={
                    "method": scope["method"],
                    "path": _loggable(scope["path"]),  # without the query string
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
