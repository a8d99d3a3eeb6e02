"""Apply a batch of inputs to their orders: read once, decide in memory, commit atomically, then publish.

The order of effects is what makes an at-least-once bus safe:

1. one Redis round trip reads every order of the batch, its unpublished outbox and the inputs already applied;
2. the pure domain decides each input against the state left by the inputs before it;
3. one round trip commits every transition through `commit_transition.lua`; each is atomic and guarded by the
   order's version, so a concurrent change (another consumer, a timer) is detected and that order redone;
4. every outbox entry of the touched orders is published and awaited, then deleted from the outbox;
5. only then does the caller let Kafka commit the offsets.

A crash anywhere re-delivers the batch: applied inputs are recognised as duplicates, and their outbox entries,
still stored, are published again under the same event ids.
"""

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from contracts.resources import ReservationConfirmed, ReservationFailed
from contracts.statuses import RejectionCode
from service import metrics
from service.consumers.inbound import Inbound, dead_letter
from service.domain.decide import decide
from service.domain.decisions import Decision, reject
from service.domain.order import Order
from service.store.orders import OrderStore, Transition
from service.store.outbox import Destination, OutboxEntry, PendingEntry

log = logging.getLogger(__name__)

MAX_CONFLICT_ROUNDS = 8


class Publisher(Protocol):
    """Sends messages and returns once the broker acknowledged every one of them."""

    async def publish(self, entries: Sequence[OutboxEntry]) -> None: ...


class OrderProcessor:
    """Applies batches of commands and replies exactly once in effect."""

    def __init__(self, store: OrderStore, publisher: Publisher, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._publisher = publisher
        self._clock = clock

    async def process(self, batch: Sequence[Inbound]) -> None:
        """Apply `batch` and publish everything it decided; raise if that could not be made durable."""
        to_publish: dict[tuple[str, bytes], PendingEntry] = {}
        direct: list[OutboxEntry] = []
        pending = list(batch)
        for _ in range(MAX_CONFLICT_ROUNDS):
            pending = await self._apply_round(pending, to_publish, direct)
            if not pending:
                break
            metrics.TRANSITION_CONFLICTS.inc(len(pending))
        else:
            raise RuntimeError(f"{len(pending)} inputs still conflicting after {MAX_CONFLICT_ROUNDS} rounds")
        ordered = sorted(to_publish.values(), key=lambda p: (p.order_id, p.number))
        await self._publisher.publish([p.entry for p in ordered] + direct)
        await self._store.acknowledge(ordered)
        for p in ordered:
            metrics.MESSAGES_PUBLISHED.labels(p.entry.destination.value).inc()

    async def _apply_round(
        self,
        pending: list[Inbound],
        to_publish: dict[tuple[str, bytes], PendingEntry],
        direct: list[OutboxEntry],
    ) -> list[Inbound]:
        """One read-decide-commit round; returns the inputs whose order changed under them."""
        now = self._clock()
        snapshots, applied = await self._store.load(
            (i.order_id for i in pending), [(i.order_id, i.input_id) for i in pending]
        )
        for snapshot in snapshots.values():
            # Entries a crashed run stored but never published: they go out first, with their original ids.
            for p in snapshot.outbox:
                to_publish.setdefault((p.order_id, p.number), p)
        working: dict[str, tuple[Order | None, str]] = {o: (s.order, s.version) for o, s in snapshots.items()}
        transitions: list[tuple[Inbound, Decision, Transition]] = []
        seen: dict[str, str] = {}
        for inbound in pending:
            earlier = applied.get(inbound.input_id)
            earlier_fingerprint = earlier.decode() if earlier is not None else seen.get(inbound.input_id)
            if earlier_fingerprint is not None:
                self._on_duplicate(inbound, earlier_fingerprint, now, direct)
                continue
            seen[inbound.input_id] = inbound.fingerprint
            order, version = working[inbound.order_id]
            try:
                decision = decide(order, inbound.message, now)
            except Exception as error:
                # A bug must not block the partition: park this input with the reason and go on.
                log.exception("input.processing_failed", extra={"order_id": inbound.order_id})
                direct.extend(_processing_dead_letter(inbound, error, now))
                continue
            if decision.anomaly == "UNKNOWN_ORDER":
                # Nothing to attach a record to: count it and leave no keys behind for a stray reply.
                self._account(inbound, decision)
                continue
            new_state = decision.order.model_dump_json().encode() if decision.order is not None else None
            if decision.order is not None:
                working[inbound.order_id] = (decision.order, inbound.input_id)
            transition = Transition(
                inbound.order_id,
                inbound.input_id,
                inbound.fingerprint,
                version,
                new_state,
                _entries(inbound.order_id, decision),
            )
            transitions.append((inbound, decision, transition))
        results = await self._store.commit([t for _, _, t in transitions])
        retry: list[Inbound] = []
        for (inbound, decision, transition), result in zip(transitions, results, strict=True):
            if result.outcome == "ok":
                first = int(result.detail)
                for n, entry in enumerate(transition.entries):
                    number = b"%012d" % (first + n)
                    to_publish[(inbound.order_id, number)] = PendingEntry(inbound.order_id, number, entry)
                self._account(inbound, decision)
            elif result.outcome == "duplicate":
                self._on_duplicate(inbound, result.detail, now, direct)
            else:
                retry.append(inbound)
        # Versions chain within a batch, so once one transition of an order conflicts all later ones do too.
        return retry

    def _on_duplicate(
        self, inbound: Inbound, fingerprint: str, now: datetime, direct: list[OutboxEntry]
    ) -> None:
        metrics.INPUTS_DUPLICATE.labels(inbound.kind).inc()
        if fingerprint == inbound.fingerprint:
            return
        message = inbound.message
        if isinstance(message, ReservationConfirmed | ReservationFailed):
            metrics.REPLY_ANOMALIES.labels("REPLY_ID_CONFLICT").inc()
            log.warning(
                "reply.id_conflict", extra={"order_id": inbound.order_id, "input_id": inbound.input_id}
            )
            return
        reason = "command_id was already used for a different command"
        decision = reject(message, message.type, RejectionCode.IDEMPOTENCY_CONFLICT, reason, now)
        # Built from the input alone, so a re-delivery rebuilds the same rejection: it needs no outbox.
        direct.extend(_entries(inbound.order_id, decision))
        self._account(inbound, decision)

    @staticmethod
    def _account(inbound: Inbound, decision: Decision) -> None:
        if decision.rejection is not None:
            metrics.REJECTIONS.labels(decision.rejection.code.value).inc()
            log.info(
                "command.rejected",
                extra={
                    "order_id": inbound.order_id,
                    "input_id": inbound.input_id,
                    "code": decision.rejection.code,
                },
            )
        elif decision.anomaly is not None:
            metrics.REPLY_ANOMALIES.labels(decision.anomaly).inc()
            log.warning(
                "reply.anomaly",
                extra={
                    "order_id": inbound.order_id,
                    "input_id": inbound.input_id,
                    "anomaly": decision.anomaly,
                },
            )
        else:
            metrics.INPUTS_APPLIED.labels(inbound.kind).inc()
        for event in decision.events:
            log.info(
                "order.status_changed",
                extra={"order_id": event.order_id, "sequence": event.sequence, "status": event.status_name},
            )


def _processing_dead_letter(inbound: Inbound, error: Exception, now: datetime) -> list[OutboxEntry]:
    if inbound.record is None:
        return []
    letter = dead_letter(inbound.record, "PROCESSING", f"{type(error).__name__}: {error}"[:2000], now)
    metrics.DEAD_LETTERS.labels(letter.source_topic, letter.error_type).inc()
    return [OutboxEntry(Destination.DEAD_LETTER, inbound.order_id, letter.model_dump_json().encode())]


def _entries(order_id: str, decision: Decision) -> list[OutboxEntry]:
    entries = [
        OutboxEntry(Destination.STATUS_CHANGED, order_id, event.model_dump_json().encode())
        for event in decision.events
    ]
    entries += [
        OutboxEntry(Destination.RESOURCE_REQUESTS, order_id, request.model_dump_json().encode())
        for request in decision.requests
    ]
    if decision.rejection is not None:
        entries.append(
            OutboxEntry(Destination.COMMAND_REJECTED, order_id, decision.rejection.model_dump_json().encode())
        )
    return entries
