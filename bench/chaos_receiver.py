"""A webhook receiver that misbehaves in one way during a chaos period, then recovers.

Built on the tests' `WebhookReceiver` (which records every request and checks signatures); this adds the
misbehaviours it has no script entry for, and switching between chaos and health.
"""

import time
from enum import StrEnum

from aiohttp import web

from testkit.webhook_receiver import Received, Reply, WebhookReceiver

DISCONNECTED = 0
"""The status recorded for a request the receiver dropped without answering."""


class Misbehaviour(StrEnum):
    """What a receiver does during the chaos period."""

    HEALTHY = "healthy"
    """Answers 200 at once: the control."""
    ERROR_500 = "error_500"
    """Answers 500."""
    HANG = "hang"
    """Answers only long after the relay's timeout."""
    DISCONNECT = "disconnect"
    """Reads the request, then closes the connection without a word."""
    SLOW = "slow"
    """Answers 200, slowly but within the relay's timeout."""


class ChaosReceiver(WebhookReceiver):
    """Misbehaves as told while `chaos` is on; answers 200 at once otherwise."""

    def __init__(self, misbehaviour: Misbehaviour, relay_timeout: float) -> None:
        super().__init__()
        self.misbehaviour = misbehaviour
        self._relay_timeout = relay_timeout
        self.chaos = False

    def start_chaos(self) -> None:
        self.chaos = True
        self.default = {
            Misbehaviour.HEALTHY: Reply(),
            Misbehaviour.ERROR_500: Reply(status=500),
            # Recorded as a failure when it finally answers: the relay has given up on it by then.
            Misbehaviour.HANG: Reply(status=504, delay=self._relay_timeout * 3),
            Misbehaviour.DISCONNECT: Reply(),
            Misbehaviour.SLOW: Reply(delay=self._relay_timeout * 0.6),
        }[self.misbehaviour]

    def recover(self) -> None:
        self.chaos = False
        self.default = Reply()

    async def _handle(self, request: web.Request) -> web.Response:
        if not (self.chaos and self.misbehaviour is Misbehaviour.DISCONNECT):
            return await super()._handle(request)
        body = await request.read()
        async with self._changed:
            self.received.append(
                Received(
                    request.headers.get("webhook-id", ""),
                    body,
                    {},
                    dict(request.headers),
                    DISCONNECTED,
                    time.monotonic(),
                )
            )
            self._changed.notify_all()
        assert request.transport is not None
        request.transport.abort()  # no status line, no headers: the connection just ends
        raise web.HTTPServiceUnavailable  # never sent: there is no connection left to send it on
