"""What became of a command, as `GET /v1/commands/{command_id}` answers it: accepted, applied or rejected.

The API records `accepted` when it published a command; the service records `applied` or `rejected` when
it decided it (a local effect of the order's outbox, so it is carried out after the events are published).
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

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


def accepted(command: OrderCommand, now: datetime) -> CommandOutcome:
    """The API published `command`; the service has not decided it yet."""
    return CommandOutcome(**_naming(command), outcome="accepted", recorded_at=now)


def decided(
    command: OrderCommand,
    rejection: CommandRejected | None,
    events: Sequence[StatusEvent],
    now: datetime,
) -> CommandOutcome:
    """What the service decided for `command`: rejected, or applied with the events it produced."""
    if rejection is not None:
        return rejected(rejection)
    return CommandOutcome(
        **_naming(command),
        outcome="applied",
        sequences=[event.sequence for event in events],
        recorded_at=now,
    )


def rejected(rejection: CommandRejected) -> CommandOutcome:
    """The outcome a `command_rejected` event stands for, with its field errors (INVALID_COMMAND)."""
    return CommandOutcome(
        command_id=rejection.command_id,
        client_id=rejection.client_id,
        command_type=rejection.command_type,
        order_id=rejection.order_id,
        outcome="rejected",
        rejection=CommandRejection(
            code=rejection.code,
            message=rejection.message,
            errors=rejection.errors,
        ),
        recorded_at=rejection.occurred_at,
    )


def _naming(command: OrderCommand) -> dict[str, str]:
    return {
        "command_id": command.command_id,
        "client_id": command.client_id,
        "command_type": command.type,
        "order_id": command.order_id,
    }
