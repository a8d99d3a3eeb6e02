"""Turning raw Kafka records into validated inputs, or into dead letters that say why not."""

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from aiokafka import ConsumerRecord
from pydantic import TypeAdapter, ValidationError

from contracts.commands import OrderCommand, order_command_adapter
from contracts.events import DeadLetter
from contracts.resources import ResourceReplyMessage, resource_reply_adapter
from service.domain.decide import ConfirmationDeadline, Input


@dataclass(frozen=True, slots=True, kw_only=True)
class Inbound:
    """A valid command or reply, with the identity that makes applying it idempotent."""

    order_id: str
    input_id: str
    fingerprint: str
    message: Input
    record: ConsumerRecord | None = None
    """Where it was read, for a dead letter if processing it fails."""

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


def _fingerprint(model: OrderCommand | ResourceReplyMessage) -> str:
    return hashlib.blake2b(model.model_dump_json().encode(), digest_size=16).hexdigest()


def command_input(command: OrderCommand, record: ConsumerRecord | None = None) -> Inbound:
    """A command's idempotency key is scoped to its client: `cmd/<client_id>/<command_id>`."""
    input_id = f"cmd/{command.client_id}/{command.command_id}"
    return Inbound(
        order_id=command.order_id,
        input_id=input_id,
        fingerprint=_fingerprint(command),
        message=command,
        record=record,
    )


def reply_input(reply: ResourceReplyMessage, record: ConsumerRecord | None = None) -> Inbound:
    """A reply's idempotency key is the operator's `reply_id`."""
    return Inbound(
        order_id=reply.order_id,
        input_id=f"reply/{reply.reply_id}",
        fingerprint=_fingerprint(reply),
        message=reply,
        record=record,
    )


def deadline_input(order_id: str) -> Inbound:
    """The clock's input for an order whose confirmation deadline passed; one per order, ever."""
    return Inbound(
        order_id=order_id,
        input_id=f"timer/confirmation/{order_id}",
        fingerprint="confirmation-deadline",
        message=ConfirmationDeadline(order_id),
    )


@dataclass(frozen=True)
class InboundDecoder:
    """Validates the records of one topic against its contract; anything else becomes a dead letter."""

    adapter: TypeAdapter[Any]
    to_input: Callable[[Any, ConsumerRecord], Inbound]
    max_message_bytes: int

    def decode(self, record: ConsumerRecord, now: datetime) -> Inbound | DeadLetter:
        """Parse and validate one record; the key must be the message's `order_id`."""
        value: bytes = record.value or b""
        if len(value) > self.max_message_bytes:
            # Keep the dead letter itself within the limits of the topic it goes to.
            error = f"{len(value)} bytes, limit {self.max_message_bytes}"
            return dead_letter(record, "TOO_LARGE", error, now, keep_bytes=self.max_message_bytes)
        try:
            inbound = self.to_input(self.adapter.validate_json(value), record)
        except ValidationError as error:
            not_json = error.errors()[0]["type"] == "json_invalid"
            return dead_letter(record, "NOT_JSON" if not_json else "SCHEMA", _describe(error), now)
        key = record.key.decode("utf-8", "replace") if record.key is not None else None
        if key != inbound.order_id:
            return dead_letter(record, "SCHEMA", f"message key {key!r} is not the order_id", now)
        return inbound


def command_decoder(max_message_bytes: int) -> InboundDecoder:
    """Decoder for `orders.commands`."""
    return InboundDecoder(order_command_adapter, command_input, max_message_bytes)


def reply_decoder(max_message_bytes: int) -> InboundDecoder:
    """Decoder for `resources.replies`."""
    return InboundDecoder(resource_reply_adapter, reply_input, max_message_bytes)


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


def _describe(error: ValidationError) -> str:
    # Field locations and messages only: the offending input values may hold personal data.
    problems = error.errors(include_url=False, include_input=False, include_context=False)
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in problems[:10]]
    return "; ".join(parts)[:2000]
