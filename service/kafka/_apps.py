"""The one start and stop sequence of a process that consumes: its own steps around a FastStream broker."""

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from faststream import FastStream
from faststream.kafka import KafkaBroker

Step = Callable[[], Awaitable[None]]


class BackgroundLoop(Protocol):
    """A loop that runs beside the consumers (the deadline watcher, the delivery worker)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def build_app(
    broker: KafkaBroker,
    *,
    client_id: str,
    prepare: Step | None = None,
    loops: Sequence[BackgroundLoop] = (),
    close: Step | None = None,
) -> FastStream:
    """The app that runs `prepare`, starts the broker, then the `loops`; and on the way out stops the loops,
    drains and stops the broker, then runs `close`. `run()` (the CLI) does that around waiting for SIGTERM
    or SIGINT, `start()` and `stop()` do it for embedding: one sequence for both."""
    return FastStream(
        broker,
        logger=logging.getLogger(f"{client_id}.app"),
        on_startup=[prepare] if prepare else [],
        after_startup=[loop.start for loop in loops],
        on_shutdown=[loop.stop for loop in reversed(loops)],
        after_shutdown=[close] if close else [],
    )


class ConsumingProcess:
    """`start` and `stop` of a process whose `app` is built by `build_app`."""

    app: FastStream

    async def start(self) -> None:
        """Run the start sequence (for embedding, e.g. in tests)."""
        await self.app.start()

    async def stop(self) -> None:
        """Run the stop sequence: in-flight batches drain before `close`."""
        await self.app.stop()
