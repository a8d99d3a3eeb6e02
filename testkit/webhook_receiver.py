"""A real HTTP server on loopback standing in for a client's webhook endpoint; it verifies signatures."""

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from service.devstack import free_port


@dataclass
class Reply:
    """How the receiver answers one request."""

    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Received:
    """One request as the receiver saw it."""

    webhook_id: str
    raw: bytes
    body: dict[str, Any]
    headers: dict[str, str]
    status: int
    at: float


class WebhookReceiver:
    """Answers from a script of replies (then `default`), and records every request."""

    def __init__(self, port: int | None = None, *, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port()
        self.script: list[Reply] = []
        self.default = Reply()
        self.received: list[Received] = []
        self.secrets: list[str] = []
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hooks"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        reply = self.script.pop(0) if self.script else self.default
        body = await request.read()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        async with self._changed:
            self.received.append(
                Received(
                    request.headers.get("webhook-id", ""),
                    body,
                    json.loads(body),
                    dict(request.headers),
                    reply.status,
                    time.monotonic(),
                )
            )
            self._changed.notify_all()
        return web.Response(
            status=reply.status, headers=reply.headers, text="ok" if reply.status < 300 else "nope"
        )

    def verifies(self, received: Received, secret: str) -> bool:
        """Whether the request carries a valid signature by `secret` (the receiver's few lines)."""
        try:
            Webhook(secret).verify(received.raw, received.headers)
        except WebhookVerificationError:
            return False
        return True

    def delivered(self, event_id: str | None = None) -> list[Received]:
        """Requests answered 2xx (for one event, if given)."""
        return [r for r in self.received if r.status < 300 and (event_id is None or r.webhook_id == event_id)]

    async def wait_for(self, probe: Callable[[], Any], timeout: float = 20.0) -> Any:
        """Wait until `probe()` is truthy, re-checked on every request."""
        async with asyncio.timeout(timeout), self._changed:
            while not (result := probe()):
                await self._changed.wait()
            return result
