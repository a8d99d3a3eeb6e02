"""Webhook receivers that hold the relay's requests open: the misbehaviours a deadline per attempt is for."""

import asyncio
import time

from aiohttp import web

from testkit.webhook_receiver import Received, WebhookReceiver


class SlowBodyReceiver(WebhookReceiver):
    """Answers 200 with its headers at once, then trickles the body one byte every `interval` seconds for
    as long as the client keeps reading. Per-phase timeouts (connect, each read) never fire on it; only a
    deadline for the whole attempt does. Every request is recorded when it arrives."""

    def __init__(self, interval: float, *, port: int | None = None, host: str = "127.0.0.1") -> None:
        super().__init__(port, host=host)
        self.interval = interval
        self.open_requests = 0
        """Requests whose body is still trickling: what the relay holds open at this moment."""

    async def _handle(self, request: web.Request) -> web.StreamResponse:  # type: ignore[override]
        body = await request.read()
        async with self._changed:
            self.received.append(
                Received(
                    request.headers.get("webhook-id", ""),
                    body,
                    {},
                    dict(request.headers),
                    200,
                    time.monotonic(),
                )
            )
            self._changed.notify_all()
        response = web.StreamResponse(status=200, headers={"content-type": "text/plain"})
        await response.prepare(request)
        self.open_requests += 1
        try:
            while True:
                await response.write(b".")
                await asyncio.sleep(self.interval)
        except ConnectionError:
            return response  # the client went away: what a deadline does
        finally:
            self.open_requests -= 1
