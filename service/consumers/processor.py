"""Apply a batch of inputs to their orders: read once, decide in memory, commit atomically, then publish.

The order of effects is what makes an at-least-once bus safe:

1. one Redis round trip reads every order of the batch, its unpublished outbox and the inputs already applied;
2. walk-ins take their entitlement units first (idempotent per input, one round trip for the batch);
3. the pure domain decides each input against the state left by the inputs before it;
4. one round trip commits every transition through `commit_transition.lua`; each is atomic and guarded by the
   order's version, so a concurrent change (another consumer, a timer) is detected and that order redone;
5. every outbox entry of the touched orders is carried out: messages are published and awaited while the
   local effects that need not wait for them (new deadlines, the client index, refunds) are applied; then
   the commands' outcomes and the anomaly records; then the entries are deleted from the outbox, and only
   then the deadlines of orders that left Pending (one that fired is what carries out its outbox again);
6. only then does the caller let Kafka commit the offsets (or the timer loop forget the timer).

The invariant: an input's offset is committed only once everything the inputs up to it decided is durable
(the state and outbox in Redis, the messages acknowledged by the broker, the effects applied), an outbox
entry is deleted only once it has been carried out, and what re-delivers an input (its offset, its deadline)
outlives its outbox entries. Anything less is carried out again on re-delivery.

A crash anywhere re-delivers the batch: applied inputs are recognised as duplicates, and their outbox entries,
still stored, are carried out again: messages under the same event ids, effects idempotently.
"""

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import msgspec

from contracts.commands import RecordWalkIn
from contracts.resources import ReservationConfirmed, ReservationFailed, ReservationWaitlisted
from contracts.statuses import RejectionCode
from service import metrics
from service.clock import to_epoch_ms
from service.consumers.inbound import Inbound, dead_letter
from service.domain.command_outcomes import decided
from service.domain.decide import Command, Context, Deadline, decide
from service.domain.local_effects import EntitlementCheck, RecordAnomaly, RecordCommandOutcome
from service.domain.order import Order
from service.domain.outcome import Decision, reject
from service.domain.policy import Policy
from service.domain.reasons import Anomaly
from service.domain.retention import expires_at
from service.store.effect_runner import LocalEffects, effect_of, encode_effect
from service.store.entitlements import EntitlementStore
from service.store.orders import CommandClaim, OrderId, OrderSnapshot, OrderStore, Transition
from service.store.outbox import Destination, OutboxEntry, PendingEntry

log = logging.getLogger(__name__)

MAX_CONFLICT_ROUNDS = 8


class Publisher(Protocol):
    """Sends messages and returns once the broker acknowledged every one of them."""

    async def publish(self, entries: Sequence[OutboxEntry]) -> None: ...


@dataclass
class _BatchOutput:
    """What a batch must carry out before its inputs may be acknowledged."""

    stored: dict[tuple[str, str, bytes], PendingEntry] = field(default_factory=dict)
    direct: list[OutboxEntry] = field(default_factory=list)
    """Messages derived from the input alone (conflict rejections, dead letters): no outbox needed."""
    anomalies: list[tuple[Inbound, str]] = field(default_factory=list)
    applied: Counter[str] = field(default_factory=Counter)
    """Inputs applied in the current round, by kind: counted once per kind (`labels()` is not free)."""


class OrderProcessor:
    """Applies batches of commands, replies and deadlines exactly once in effect."""

    def __init__(
        self,
        *,
        store: OrderStore,
        entitlements: EntitlementStore,
        effects: LocalEffects,
        publisher: Publisher,
        clock: Callable[[], datetime],
        policy: Policy,
        claim_seconds: int = 7 * 24 * 3600,
        timeout_seconds: float = 30.0,
    ) -> None:
        self._store = store
        self._entitlements = entitlements
        self._effects = effects
        self._publisher = publisher
        self._clock = clock
        self._policy = policy
        self._claim_seconds = claim_seconds
        self._timeout_seconds = timeout_seconds

    async def process(self, batch: Sequence[Inbound]) -> None:
        """Apply `batch` and carry out everything it decided; raise if that could not be made durable (or
        not within the time limit: everything is idempotent, so the batch is simply read again)."""
        async with asyncio.timeout(self._timeout_seconds):
            await self._process(batch)

    async def _process(self, batch: Sequence[Inbound]) -> None:
        output = _BatchOutput()
        pending = list(batch)
        for _ in range(MAX_CONFLICT_ROUNDS):
            pending = await self._apply_round(pending, output)
            if not pending:
                break
            metrics.TRANSITION_CONFLICTS.inc(len(pending))
        else:
            raise RuntimeError(f"{len(pending)} inputs still conflicting after {MAX_CONFLICT_ROUNDS} rounds")
        ordered = sorted(output.stored.values(), key=lambda p: (p.client_id, p.order_id, p.number))
        entries = [p.entry for p in ordered] + output.direct
        messages = [e for e in entries if e.destination is not Destination.LOCAL_EFFECT]
        effects = [effect_of(e) for e in entries if e.destination is Destination.LOCAL_EFFECT]
        # The messages and the effects on other Redis state depend on nothing of each other: they are carried
        # out at once. Outcomes and anomaly records follow publication (see `LocalEffects`), and the outbox
        # is acknowledged only when all of it is durable.
        await _all(self._publisher.publish(messages), self._effects.run_beside_publication(effects))
        await self._effects.run_after_publication(effects)
        await self._store.acknowledge(ordered)
        await self._effects.run_after_acknowledgement(effects)
        if output.anomalies:
            anomalies = [(i.client_id, i.order_id, i.input_id, a) for i, a in output.anomalies]
            await self._store.record_anomalies(anomalies)
        for destination, count in Counter(p.entry.destination.value for p in ordered).items():
            metrics.MESSAGES_PUBLISHED.labels(destination).inc(count)  # once per label: labels() is not free

    async def _apply_round(self, pending: list[Inbound], output: _BatchOutput) -> list[Inbound]:
        """One read-decide-commit round; returns the inputs whose order changed under them."""
        now = self._clock()
        claims: list[tuple[Inbound, CommandClaim]] = []
        for inbound in pending:
            if isinstance(inbound.message, Command):
                command = inbound.message
                claim = CommandClaim(command.client_id, command.command_id, inbound.fingerprint)
                claims.append((inbound, claim))
        refs = [_order_of(i) for i in pending]
        snapshots, applied, claimed = await self._store.load(
            refs,
            [(ref, i.input_id) for ref, i in zip(refs, pending, strict=True)],
            [claim for _, claim in claims],
            self._claim_seconds,
        )
        conflicting = set()
        for (inbound, _), holder in zip(claims, claimed, strict=True):
            if (
                holder is not None
                and holder.decode() != inbound.fingerprint
                and inbound.input_id not in applied
            ):
                # The command_id is held by another payload, possibly on another order (an input its own
                # order already applied is a plain duplicate, even after its claim expired and was retaken).
                conflicting.add(inbound.input_id)
                self._on_duplicate(inbound, holder.decode(), now, output)
        pending = [i for i in pending if i.input_id not in conflicting]
        for snapshot in snapshots.values():
            # Entries a crashed run stored but never carried out go first, with their original ids.
            for p in snapshot.outbox:
                output.stored.setdefault((p.client_id, p.order_id, p.number), p)
        checks = await self._consume_entitlements(pending, snapshots, applied)
        transitions = self._decide_all(pending, snapshots, applied, checks, now, output)
        results = await self._store.commit([t for _, _, t in transitions])
        retry: list[Inbound] = []
        for (inbound, decision, _), result in zip(transitions, results, strict=True):
            if result.outcome == "ok":
                for stored in result.stored:
                    output.stored[(stored.client_id, stored.order_id, stored.number)] = stored
                self._account(inbound, decision, output)
            elif result.outcome == "duplicate":
                self._on_duplicate(inbound, result.detail, now, output)
            else:
                retry.append(inbound)
        for kind, count in output.applied.items():
            metrics.INPUTS_APPLIED.labels(kind).inc(count)
        output.applied.clear()
        # Versions chain within a batch, so once one transition of an order conflicts all later ones do too.
        return retry

    def _decide_all(
        self,
        pending: list[Inbound],
        snapshots: dict[OrderId, OrderSnapshot],
        applied: dict[str, bytes],
        checks: dict[str, EntitlementCheck],
        now: datetime,
        output: _BatchOutput,
    ) -> list[tuple[Inbound, Decision, Transition]]:
        """Decide each new input on the state the inputs before it left; duplicates are only accounted."""
        working: dict[OrderId, tuple[Order | None, str]] = {
            o: (s.order, s.version) for o, s in snapshots.items()
        }
        transitions: list[tuple[Inbound, Decision, Transition]] = []
        seen: dict[str, str] = {}
        for inbound in pending:
            earlier = applied.get(inbound.input_id)
            earlier_fingerprint = earlier.decode() if earlier is not None else seen.get(inbound.input_id)
            if earlier_fingerprint is not None:
                self._on_duplicate(inbound, earlier_fingerprint, now, output)
                continue
            seen[inbound.input_id] = inbound.fingerprint
            ref = _order_of(inbound)
            order, version = working[ref]
            context = Context(now, self._policy, inbound.input_id, checks.get(inbound.input_id))
            try:
                decision = decide(order, inbound.message, context)
            except Exception as error:
                # A bug must not block the partition: park this input with the reason and go on.
                log.exception("input.processing_failed", extra={"order_id": inbound.order_id})
                output.direct.extend(_processing_dead_letter(inbound, error, now))
                continue
            if decision.is_no_change:
                continue  # a deadline for an order that already left Pending: nothing to record
            if decision.anomaly is Anomaly.UNKNOWN_ORDER:
                # Nothing to attach a record to: count it, and leave no keys behind for a stray reply.
                self._account(inbound, decision, output)
                continue
            new_state, expires_at_ms = None, None
            if decision.order is not None:
                new_state = decision.order.to_json()
                working[ref] = (decision.order, inbound.input_id)
                expiry = expires_at(decision.order, self._policy.order_retention)
                expires_at_ms = to_epoch_ms(expiry) if expiry is not None else 0  # 0: kept
            elif order is None:
                # A rejected command for an order that does not exist still records its input (a re-sent
                # one is a duplicate): those keys are kept as long as a finished order's.
                expires_at_ms = to_epoch_ms(now + self._policy.order_retention)
            transition = Transition(
                client_id=inbound.client_id,
                order_id=inbound.order_id,
                input_id=inbound.input_id,
                fingerprint=inbound.fingerprint,
                expected_version=version,
                new_state=new_state,
                entries=_entries(inbound, decision, inbound.input_id) + _outcome(inbound, decision, now),
                expires_at_ms=expires_at_ms,
            )
            transitions.append((inbound, decision, transition))
        return transitions

    async def _consume_entitlements(
        self, pending: list[Inbound], snapshots: dict[OrderId, OrderSnapshot], applied: dict[str, bytes]
    ) -> dict[str, EntitlementCheck]:
        """Take the units of every new walk-in; a walk-in that turns out not to be created refunds them."""
        walk_ins = [
            (i.input_id, i.message)
            for i in pending
            if isinstance(i.message, RecordWalkIn)
            and i.input_id not in applied
            and snapshots[_order_of(i)].order is None
        ]
        requests = [(m.client_id, m.credential, input_id, len(m.passengers)) for input_id, m in walk_ins]
        results = await self._entitlements.consume(requests)
        return {input_id: check for (input_id, _), check in zip(walk_ins, results, strict=True)}

    def _on_duplicate(self, inbound: Inbound, fingerprint: str, now: datetime, output: _BatchOutput) -> None:
        metrics.INPUTS_DUPLICATE.labels(inbound.kind).inc()
        if fingerprint == inbound.fingerprint:
            return
        message = inbound.message
        if isinstance(message, ReservationConfirmed | ReservationFailed | ReservationWaitlisted | Deadline):
            output.anomalies.append((inbound, Anomaly.REPLY_ID_CONFLICT))
            metrics.REPLY_ANOMALIES.labels(Anomaly.REPLY_ID_CONFLICT).inc()
            log.warning(
                "reply.id_conflict", extra={"order_id": inbound.order_id, "input_id": inbound.input_id}
            )
            return
        reason = "command_id was already used for a different command"
        code = RejectionCode.IDEMPOTENCY_CONFLICT
        decision = reject(message, message.type, code, reason, now, variant=inbound.fingerprint)
        # Built from the input alone, so a re-delivery rebuilds the same rejection: it needs no outbox.
        output.direct.extend(_entries(inbound, decision))
        self._account(inbound, decision, output)

    @staticmethod
    def _account(inbound: Inbound, decision: Decision, output: _BatchOutput) -> None:
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
            if decision.anomaly is Anomaly.UNKNOWN_ORDER:  # committed nowhere: recorded directly
                output.anomalies.append((inbound, decision.anomaly))
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
            output.applied[inbound.kind] += 1
        if log.isEnabledFor(logging.DEBUG):
            # Every change is an event on the bus already; a line per change at INFO cost ~9% of the CPU.
            for event in decision.events:
                log.debug(
                    "order.status_changed",
                    extra={
                        "order_id": event.order_id,
                        "sequence": event.sequence,
                        "status": event.status_name,
                    },
                )


async def _all(*steps: Awaitable[None]) -> None:
    """Await `steps` concurrently; raise the first one's error once every step has finished (a failed batch is
    read again, so none is left running beside its retry)."""
    for result in await asyncio.gather(*steps, return_exceptions=True):
        if isinstance(result, BaseException):
            raise result


def _processing_dead_letter(inbound: Inbound, error: Exception, now: datetime) -> list[OutboxEntry]:
    if inbound.record is None:
        return []
    letter = dead_letter(inbound.record, "PROCESSING", f"{type(error).__name__}: {error}"[:2000], now)
    metrics.DEAD_LETTERS.labels(letter.source_topic, letter.error_type).inc()
    value = letter.model_dump_json().encode()
    return [OutboxEntry(Destination.DEAD_LETTER, inbound.order_id, value, client_id=inbound.client_id)]


def _outcome(inbound: Inbound, decision: Decision, now: datetime) -> list[OutboxEntry]:
    """A command's outcome, recorded with its transition and carried out after its events are published."""
    command = inbound.message
    if not isinstance(command, Command):
        return []
    outcome = decided(command, decision.rejection, decision.events, now)
    effect = RecordCommandOutcome(fingerprint=inbound.fingerprint, outcome=outcome)
    value = encode_effect(effect)
    return [
        OutboxEntry(
            Destination.LOCAL_EFFECT, inbound.order_id, value, client_id=inbound.client_id, effect=effect
        )
    ]


def _order_of(inbound: Inbound) -> OrderId:
    return OrderId(inbound.client_id, inbound.order_id)


def _entries(inbound: Inbound, decision: Decision, input_id: str | None = None) -> list[OutboxEntry]:
    # The Kafka key stays the order id: two clients' orders under one id share a partition, which still
    # keeps each order's inputs and events in order.
    order_id, client_id = inbound.order_id, inbound.client_id
    entries = [
        OutboxEntry(Destination.STATUS_CHANGED, order_id, event.to_json(), client_id=client_id)
        for event in decision.events
    ]
    entries += [
        OutboxEntry(Destination.RESOURCE_REQUESTS, order_id, request.to_json(), client_id=client_id)
        for request in decision.requests
    ]
    effects = list(decision.effects)
    if decision.anomaly is not None and input_id is not None:
        # Stored with the transition, so that the record survives a crash as surely as the state change.
        effects.append(
            RecordAnomaly(
                client_id=inbound.client_id, order_id=order_id, input_id=input_id, anomaly=decision.anomaly
            )
        )
    entries += [
        OutboxEntry(
            Destination.LOCAL_EFFECT, order_id, encode_effect(effect), client_id=client_id, effect=effect
        )
        for effect in effects
    ]
    if decision.rejection is not None:
        rejection = decision.rejection.model_dump_json().encode()
        entries.append(OutboxEntry(Destination.COMMAND_REJECTED, order_id, rejection, client_id=client_id))
    return entries if inbound.traceparent is None else _traced(entries, inbound.traceparent)


def _traced(entries: list[OutboxEntry], traceparent: str) -> list[OutboxEntry]:
    """The messages among `entries` carry the trace of their input, stored with them (tracing on)."""
    return [
        e
        if e.destination is Destination.LOCAL_EFFECT
        else msgspec.structs.replace(e, traceparent=traceparent)
        for e in entries
    ]
