"""Turning raw Kafka records into validated inputs, or into dead letters and rejections that say why not.

Both topics refuse JSON that repeats a key in an object. Replies are read tolerantly: top-level fields the
contract does not name are ignored (and counted by the caller). Commands are strict: one that does not match
the contract is answered with `INVALID_COMMAND` when its envelope says who sent it about which order, and
dead-lettered otherwise.
"""

import base64
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

import jiter
import msgspec
from aiokafka import ConsumerRecord
from pydantic import ConfigDict, TypeAdapter, ValidationError

from contracts.commands import Command, OrderCommand, order_command_adapter
from contracts.events import CommandRejected, DeadLetter, FieldError
from contracts.resources import ResourceReplyMessage, resource_reply_adapter
from contracts.statuses import RejectionCode
from service.domain.decide import (
    ChangeDeadline,
    ConfirmationDeadline,
    Input,
    NoShowDeadline,
    WaitlistDeadline,
)
from service.domain.outcome import reject
from service.store.timers import dated_order

MAX_FIELD_ERRORS = 10
"""Problems listed in a dead letter's `error` or a rejection's `errors`; the rest are left out."""


class Inbound(msgspec.Struct, frozen=True, kw_only=True):
    """A valid command or reply, with the identity that makes applying it idempotent."""

    client_id: str
    """With `order_id`, the order it is for: order ids are scoped per client."""
    order_id: str
    input_id: str
    fingerprint: str
    message: Input
    record: ConsumerRecord | None = None
    """Where it was read, for a dead letter if processing it fails."""
    ignored_fields: tuple[str, ...] = ()
    """Top-level fields of a reply that the contract does not name: read past, not applied."""
    traceparent: str | None = None
    """The trace context of its processing span (tracing on): what it causes continues that trace."""

    @property
    def kind(self) -> Literal["command", "reply", "timer"]:
        """Whether it came from a client, from a resource operator or from the clock."""
        return (
            "command"
            if self.input_id.startswith("cmd/")
            else "reply"
            if self.input_id.startswith("reply/")
            else "timer"
        )


def _fingerprint(model: OrderCommand | ResourceReplyMessage, *, exclude_none: bool = False) -> str:
    dumped = model.model_dump_json(exclude_none=exclude_none).encode()
    return hashlib.blake2b(dumped, digest_size=16).hexdigest()


def command_input(command: OrderCommand, record: ConsumerRecord | None = None) -> Inbound:
    """A command's idempotency key is scoped to its client: `cmd/<client_id>/<command_id>`."""
    input_id = f"cmd/{command.client_id}/{command.command_id}"
    return Inbound(
        client_id=command.client_id,
        order_id=command.order_id,
        input_id=input_id,
        fingerprint=_fingerprint(command),
        message=command,
        record=record,
    )


def reply_input(
    reply: ResourceReplyMessage, record: ConsumerRecord | None = None, ignored_fields: tuple[str, ...] = ()
) -> Inbound:
    """A reply's idempotency key is the operator's `reply_id`; its fingerprint leaves out ignored fields."""
    return Inbound(
        client_id=reservation_client(reply.reservation_id, reply.order_id),
        order_id=reply.order_id,
        input_id=f"reply/{reply.reply_id}",
        # Optional reply fields added within v1 (`booking_reference`) count only when sent: a reply applied
        # before they existed and delivered again after is the same reply, not a REPLY_ID_CONFLICT. Every
        # v1.0 reply field is required, so leaving out the Nones keeps their fingerprints as they were.
        fingerprint=_fingerprint(reply, exclude_none=True),
        message=reply,
        record=record,
        ignored_fields=ignored_fields,
    )


def reservation_client(reservation_id: str, order_id: str) -> str:
    """The client whose order `order_id` holds the reservation `<client_id>/<order_id>/<order_item_id>`, or ''
    when the id does not parse so or names another order (no client's order: the reply is UNKNOWN_ORDER)."""
    client_id, _, rest = reservation_id.partition("/")
    return client_id if client_id and rest.startswith(f"{order_id}/") else ""


def deadline_input(client_id: str, order_id: str) -> Inbound:
    """The clock's input for an order whose confirmation deadline passed; one per order, ever."""
    return Inbound(
        client_id=client_id,
        order_id=order_id,
        input_id=f"timer/confirmation/{order_id}",
        fingerprint="confirmation-deadline",
        message=ConfirmationDeadline(order_id),
    )


def waitlist_deadline_input(client_id: str, order_id: str) -> Inbound:
    """The clock's input for an order whose waitlist deadline passed; one per order, ever."""
    return Inbound(
        client_id=client_id,
        order_id=order_id,
        input_id=f"timer/waitlist/{order_id}",
        fingerprint="waitlist-deadline",
        message=WaitlistDeadline(order_id),
    )


def no_show_input(client_id: str, claimed: str) -> Inbound:
    """The clock's input for a confirmed order whose no-show deadline passed: one per deadline (`claimed` is
    `<order_id>/<epoch ms>`, see `service.store.timers`), so that a deadline a change moved fires once more
    and is not taken for a replay."""
    order_id, deadline_ms = dated_order(claimed)
    return Inbound(
        client_id=client_id,
        order_id=order_id,
        input_id=f"timer/no_show/{order_id}" + (f"/{deadline_ms}" if deadline_ms else ""),
        fingerprint="no-show-deadline",
        message=NoShowDeadline(order_id),
    )


def change_deadline_input(client_id: str, claimed: str) -> Inbound:
    """The clock's input for an order whose change deadline passed: one per change (`claimed` is
    `<order_id>/<epoch ms>`)."""
    order_id, deadline_ms = dated_order(claimed)
    return Inbound(
        client_id=client_id,
        order_id=order_id,
        input_id=f"timer/change/{order_id}/{deadline_ms}",
        fingerprint="change-deadline",
        message=ChangeDeadline(order_id),
    )


@dataclass(frozen=True)
class InboundDecoder:
    """Validates the records of one topic against its contract; anything else becomes a dead letter, or, for
    a command that says who sent it, a rejection."""

    adapter: TypeAdapter[Any]
    to_input: Callable[[Any, dict[str, Any], ConsumerRecord], Inbound]
    max_message_bytes: int
    answers_invalid: bool = False
    """Whether an invalid message with a readable envelope is answered (`INVALID_COMMAND`) instead."""
    client_of_topic: Callable[[str], str | None] | None = None
    """`per_client` topic layout: the client whose topic a record was read from, the only client its
    commands may name (`CLIENT_MISMATCH` otherwise)."""

    def decode(self, record: ConsumerRecord, now: datetime) -> Inbound | DeadLetter | CommandRejected:
        """Parse and validate one record; the key must be the message's `order_id`."""
        value: bytes = record.value or b""
        if len(value) > self.max_message_bytes:
            # Keep the dead letter itself within the limits of the topic it goes to.
            error = f"{len(value)} bytes, limit {self.max_message_bytes}"
            return dead_letter(record, "TOO_LARGE", error, now, keep_bytes=self.max_message_bytes)
        try:
            document = parse_json(value)
        except UnreadableJson as error:
            return dead_letter(record, error.error_type, str(error), now)
        key = record.key.decode("utf-8", "replace") if record.key is not None else None
        if self.client_of_topic is not None:
            sender = self.client_of_topic(record.topic)
            if sender is None:
                return dead_letter(record, "SCHEMA", "the topic is no client's", now)
            if (mismatch := reject_other_client(document, key, value, sender, now)) is not None:
                return mismatch
        try:
            message = self.adapter.validate_python(document)
        except ValidationError as error:
            rejection = (
                reject_invalid_command(document, key, value, error, now) if self.answers_invalid else None
            )
            return rejection or dead_letter(record, "SCHEMA", _describe(_problems(error)), now)
        inbound = self.to_input(message, document, record)
        if key != inbound.order_id:
            return dead_letter(record, "SCHEMA", f"message key {key!r} is not the order_id", now)
        return inbound


def command_decoder(
    max_message_bytes: int, client_of_topic: Callable[[str], str | None] | None = None
) -> InboundDecoder:
    """Decoder for `orders.commands`: strict, and answering invalid commands whose envelope is readable;
    with `client_of_topic` (the `per_client` layout), refusing commands that name another client."""
    return InboundDecoder(
        order_command_adapter,
        _strict_command_input,
        max_message_bytes,
        answers_invalid=True,
        client_of_topic=client_of_topic,
    )


def reply_decoder(max_message_bytes: int) -> InboundDecoder:
    """Decoder for `resources.replies`: tolerant of top-level fields the contract does not name."""
    return InboundDecoder(resource_reply_adapter, _tolerant_reply_input, max_message_bytes)


def _strict_command_input(command: OrderCommand, _: dict[str, Any], record: ConsumerRecord) -> Inbound:
    return command_input(command, record)


def _tolerant_reply_input(
    reply: ResourceReplyMessage, document: dict[str, Any], record: ConsumerRecord
) -> Inbound:
    known = type(reply).model_fields
    if document.keys() <= known.keys():
        return reply_input(reply, record)
    return reply_input(reply, record, tuple(name for name in document if name not in known))


class UnreadableJson(ValueError):
    """Input that is not one JSON document, or repeats a key in an object; says which dead letter it gets."""

    def __init__(self, error_type: Literal["NOT_JSON", "SCHEMA"], reason: str) -> None:
        super().__init__(reason)
        self.error_type: Literal["NOT_JSON", "SCHEMA"] = error_type


_DUPLICATE_KEY = re.compile(
    r'Detected duplicate key "(?P<key>.*)" (?P<where>at line \d+ column \d+)$', re.DOTALL
)


def parse_json(value: bytes) -> Any:
    """The JSON document in `value`, parsed as pydantic's `validate_json` parses it, except that an object
    repeating a key is refused (`UnreadableJson`) instead of keeping the last value."""
    try:
        return jiter.from_json(value, catch_duplicate_keys=True)
    except ValueError as error:
        duplicate = _DUPLICATE_KEY.match(str(error))
        if duplicate is None:
            raise UnreadableJson("NOT_JSON", f"<root>: Invalid JSON: {error}") from None
    try:
        # A repeated key is found before the end of the text: say NOT_JSON if the rest is not JSON either.
        jiter.from_json(value)
    except ValueError as error:
        raise UnreadableJson("NOT_JSON", f"<root>: Invalid JSON: {error}") from None
    # The key's name only: the values under it may hold personal data.
    name, where = duplicate["key"][:128], duplicate["where"]
    raise UnreadableJson("SCHEMA", f'duplicate key "{name}" {where}: an object must not repeat a key')


class _CommandEnvelope(Command):
    """What every command says about who sent it, about which order: enough to answer it."""

    model_config = ConfigDict(extra="ignore")
    type: str


_envelope_adapter = TypeAdapter(_CommandEnvelope)
COMMAND_TYPES = frozenset(m.model_fields["type"].default for m in get_args(get_args(OrderCommand)[0]))


def reject_invalid_command(
    document: Any, key: str | None, value: bytes, error: ValidationError, now: datetime
) -> CommandRejected | None:
    """The `INVALID_COMMAND` answer to a command that failed validation (`error`) but whose envelope is
    readable (a known `type`; valid `command_id`, `client_id` and `order_id`; the key is the `order_id`),
    or None when it is not. It claims no command_id and changes no order: the client may fix the command and
    send it again under the same command_id."""
    envelope = _readable_envelope(document, key)
    if envelope is None:
        return None
    problems = _problems(error, tag=envelope.type)
    message = f"the command does not match the contract: {_describe(problems)}"
    # The variant tells apart different invalid payloads under one command_id; the same record read again
    # gets the same event_id.
    variant = hashlib.blake2b(value, digest_size=16).hexdigest()
    decision = reject(envelope, envelope.type, RejectionCode.INVALID_COMMAND, message, now, variant=variant)
    assert decision.rejection is not None
    return decision.rejection.model_copy(update={"errors": problems})


def _readable_envelope(document: Any, key: str | None) -> _CommandEnvelope | None:
    """The envelope of a command of a known type whose key is its `order_id`, or None."""
    try:
        envelope = _envelope_adapter.validate_python(document)
    except ValidationError:
        return None
    if envelope.type not in COMMAND_TYPES or key != envelope.order_id:
        return None
    return envelope


def reject_other_client(
    document: Any, key: str | None, value: bytes, sender: str, now: datetime
) -> CommandRejected | None:
    """The `CLIENT_MISMATCH` answer to a command read from `sender`'s topic that names another client, or
    None. The answer is `sender`'s (its `client_id`, so it goes to `sender`'s rejections topic, and its
    command_id in `sender`'s namespace); it claims nothing and changes no order, the named client's least."""
    envelope = _readable_envelope(document, key)
    if envelope is None or envelope.client_id == sender:
        return None
    named = envelope.client_id
    as_sent = envelope.model_copy(update={"client_id": sender})
    message = f"client_id {named!r} is not the client of this topic ({sender!r})"
    variant = hashlib.blake2b(value, digest_size=16).hexdigest()
    decision = reject(as_sent, envelope.type, RejectionCode.CLIENT_MISMATCH, message, now, variant=variant)
    assert decision.rejection is not None
    return decision.rejection


def dead_letter(
    record: ConsumerRecord,
    error_type: Literal["NOT_JSON", "SCHEMA", "TOO_LARGE", "PROCESSING"],
    error: str,
    now: datetime,
    keep_bytes: int | None = None,
) -> DeadLetter:
    """A dead letter carrying the record's coordinates and original bytes (the first `keep_bytes` of them)."""
    value = record.value or b""
    return DeadLetter(
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        key=base64.b64encode(record.key).decode() if record.key is not None else None,
        value=base64.b64encode(value[:keep_bytes]).decode(),
        value_truncated=keep_bytes is not None and len(value) > keep_bytes,
        error=error,
        error_type=error_type,
        occurred_at=now,
    )


def _problems(error: ValidationError, tag: str | None = None) -> list[FieldError]:
    # Field locations and messages only: the offending input values may hold personal data. A location
    # starts with the union's tag (the command type) unless `tag` says to drop it; the names in it can be
    # the sender's own (an unknown field), so each is cut short.
    problems = error.errors(include_url=False, include_input=False, include_context=False)
    found = []
    for problem in problems[:MAX_FIELD_ERRORS]:
        loc = list(problem["loc"])
        if tag is not None and loc[:1] == [tag]:
            loc = loc[1:]
        found.append(
            FieldError(loc=[p[:128] if isinstance(p, str) else p for p in loc], message=problem["msg"])
        )
    return found


def _describe(problems: list[FieldError]) -> str:
    parts = [
        f"{'.'.join(str(p) for p in problem.loc) or '<root>'}: {problem.message}" for problem in problems
    ]
    return "; ".join(parts)[:2000]
