"""The clock as a source of inputs: deadlines that passed (confirmation, waitlist, no-show, change) become
inputs to the processor."""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from service import metrics
from service.consumers.inbound import (
    Inbound,
    change_deadline_input,
    deadline_input,
    no_show_input,
    waitlist_deadline_input,
)
from service.consumers.processor import OrderProcessor
from service.store.timers import TimerKind, TimerStore

INPUT_OF: dict[TimerKind, Callable[[str, str], Inbound]] = {
    TimerKind.CONFIRMATION: deadline_input,
    TimerKind.WAITLIST: waitlist_deadline_input,
    TimerKind.NO_SHOW: no_show_input,
    TimerKind.CHANGE: change_deadline_input,
}
"""The processor's input for a deadline of each kind that passed."""

log = logging.getLogger(__name__)


class DeadlineWatcher:
    """Claims due deadlines (leased, so instances never fire one at once), applies them, then forgets them."""

    def __init__(
        self,
        *,
        timers: TimerStore,
        processor: OrderProcessor,
        clock: Callable[[], datetime],
        poll_seconds: float,
        lease_seconds: float,
        batch: int,
    ) -> None:
        self._timers = timers
        self._processor = processor
        self._clock = clock
        self._poll_seconds = poll_seconds
        self._lease_seconds = lease_seconds
        self._batch = batch
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start watching in the background (async, so FastStream runs it on the event loop)."""
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="deadline-watcher")

    async def stop(self) -> None:
        """Finish the round in progress and stop."""
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def fire_due(self) -> int:
        """Apply every deadline due now; returns how many were fired."""
        fired = 0
        for kind, to_input in INPUT_OF.items():
            while claimed := await self._timers.claim_due(
                self._clock(), self._lease_seconds, self._batch, kind
            ):
                await self._processor.process(
                    [to_input(client_id, order_id) for client_id, order_id in claimed]
                )
                await self._timers.remove(claimed, kinds=(kind,))
                fired += len(claimed)
        return fired

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                fired = await self.fire_due()
                if fired:
                    log.info("deadlines.fired", extra={"count": fired})
            except Exception:
                # Redis or Kafka away: the leases lapse and the deadlines are claimed again later.
                log.exception("deadlines.failed")
                metrics.BATCH_FAILURES.labels("deadlines").inc()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._poll_seconds)
