"""What became of a command, as `GET /v1/commands/{command_id}` answers it: accepted, applied or rejected.

The API records `accepted` when it published a command; the service records `applied` or `rejected` when
it decided it (a local effect of the order's outbox, so it is carried out after the events are published).

`CommandOutcome` is the answer's model (the API validates what it reads, and documents it). What the
processes record is an `OutcomeRecord`: a msgspec struct with the same fields, which encodes to the JSON the
model gives, byte for byte (`tests/unit/test_command_outcome_records.py`). The service records one per
command it decides; building and serialising the pydantic model twice (into the outbox, then into Redis)
was about 8 % of its CPU.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

import msgspec
from pydantic import BaseModel, ConfigDict, Field

from contracts.commands import OrderCommand
from contracts.events import CommandRejected, FieldError
from contracts.statuses import RejectionCode
from service.domain.status_event import StatusEvent

Outcome = Literal["accepted", "applied", "rejected"]


class CommandRejection(BaseModel):
    """Why the command was not carried out: the `code` and `message` of its `command_rejected` event."""

    model_config = ConfigDict(frozen=True)

    code: RejectionCode = Field(description="Stable machine-readable reason.")
    message: str = Field(description="Human-readable explanation.", examples=["no such order"])
    errors: list[FieldError] | None = Field(
        default=None, description="For `INVALID_COMMAND`: what in the command does not fit the contract."
    )


class CommandOutcome(BaseModel):
    """A command's outcome, kept as long as its `command_id` is claimed (the idempotency retention)."""

    model_config = ConfigDict(frozen=True)

    command_id: str = Field(examples=["create-ORD-2026-000123"])
    client_id: str = Field(description="The client that sent it.", examples=["acme-air"])
    command_type: str = Field(examples=["create_prebooking"])
    order_id: str = Field(examples=["ORD-2026-000123"])
    outcome: Outcome = Field(
        description="`accepted`: published, not processed yet; `applied`: carried out; `rejected`: refused."
    )
    sequences: list[int] = Field(
        default_factory=list,
        description="`applied`: the `sequence` of each status event the command produced.",
        examples=[[1]],
    )
    rejection: CommandRejection | None = Field(default=None, description="`rejected`: why.")
    recorded_at: datetime = Field(description="When this outcome was recorded (UTC).")


class FieldErrorRecord(msgspec.Struct, frozen=True, kw_only=True):
    """`contracts.events.FieldError`, as an outcome records it."""

    loc: list[str | int]
    message: str


class RejectionRecord(msgspec.Struct, frozen=True, kw_only=True):
    """`CommandRejection`, as an outcome records it."""

    code: RejectionCode
    message: str
    errors: list[FieldErrorRecord] | None = None


class OutcomeRecord(msgspec.Struct, frozen=True, kw_only=True):
    """`CommandOutcome`, as the processes record it: the same fields in the same order, the same JSON."""

    command_id: str
    client_id: str
    command_type: str
    order_id: str
    outcome: Outcome
    sequences: list[int] = msgspec.field(default_factory=list)
    rejection: RejectionRecord | None = None
    recorded_at: datetime

    def to_json(self) -> bytes:
        """The JSON `CommandOutcome.model_dump_json()` gives for the same outcome."""
        return _ENCODER.encode(self)


_ENCODER = msgspec.json.Encoder()


def accepted(command: OrderCommand, now: datetime) -> OutcomeRecord:
    """The API published `command`; the service has not decided it yet."""
    return _of(command, "accepted", now)


def decided(
    command: OrderCommand,
    rejection: CommandRejected | None,
    events: Sequence[StatusEvent],
    now: datetime,
) -> OutcomeRecord:
    """What the service decided for `command`: rejected, or applied with the events it produced."""
    if rejection is not None:
        return rejected(rejection)
    return _of(command, "applied", now, [event.sequence for event in events])


def rejected(rejection: CommandRejected) -> OutcomeRecord:
    """The outcome a `command_rejected` event stands for, with its field errors (INVALID_COMMAND)."""
    errors = None
    if rejection.errors is not None:
        errors = [FieldErrorRecord(loc=e.loc, message=e.message) for e in rejection.errors]
    return OutcomeRecord(
        command_id=rejection.command_id,
        client_id=rejection.client_id,
        command_type=rejection.command_type,
        order_id=rejection.order_id,
        outcome="rejected",
        rejection=RejectionRecord(
            code=rejection.code,
            message=rejection.message,
            errors=errors,
        ),
        recorded_at=rejection.occurred_at,
    )


def _of(
    command: OrderCommand, outcome: Outcome, now: datetime, sequences: list[int] | None = None
) -> OutcomeRecord:
    """`command`'s outcome, named by its ids and type."""
    return OutcomeRecord(
        command_id=command.command_id,
        client_id=command.client_id,
        command_type=command.type,
        order_id=command.order_id,
        outcome=outcome,
        sequences=sequences or [],
        recorded_at=now,
    )
