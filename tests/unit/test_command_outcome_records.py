"""What the processes record of a command (`OutcomeRecord`, a msgspec struct) is the JSON of the API's model
(`CommandOutcome`) for the same outcome, byte for byte, and reads back as that model."""

from datetime import UTC, datetime

import msgspec
import pytest
from pydantic import BaseModel

from contracts.commands import CancelOrder
from contracts.events import CommandRejected, FieldError
from contracts.statuses import RejectionCode
from service.domain.command_outcomes import (
    CommandOutcome,
    CommandRejection,
    FieldErrorRecord,
    OutcomeRecord,
    RejectionRecord,
    accepted,
    decided,
    rejected,
)

NOW = datetime(2026, 12, 2, 10, 30, 0, 123456, tzinfo=UTC)
COMMAND = CancelOrder(command_id="c-1", client_id="client-a", order_id="ORD-1", reason="CHANGE_OF_PLANS")


def _rejection(errors: list[FieldError] | None) -> CommandRejected:
    return CommandRejected(
        event_id="e-1",
        command_id="c-2",
        client_id="client-a",
        order_id="ORD-2",
        command_type="create_prebooking",
        code=RejectionCode.INVALID_COMMAND if errors else RejectionCode.ORDER_NOT_FOUND,
        message="what went wrong",
        errors=errors,
        occurred_at=NOW,
    )


RECORDS = [
    accepted(COMMAND, NOW),
    decided(COMMAND, None, [], NOW),
    OutcomeRecord(
        command_id="c-1",
        client_id="client-a",
        command_type="cancel_order",
        order_id="ORD-1",
        outcome="applied",
        sequences=[3, 4],
        recorded_at=NOW.replace(microsecond=0),
    ),
    rejected(_rejection(None)),
    rejected(_rejection([FieldError(loc=["items", 0, "service_date"], message="not a date")])),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: f"{r.outcome}-{r.command_id}")
def test_a_record_is_the_models_json_and_reads_back_as_it(record: OutcomeRecord) -> None:
    model = CommandOutcome.model_validate(msgspec.to_builtins(record))
    assert record.to_json() == model.model_dump_json().encode()
    assert CommandOutcome.model_validate_json(record.to_json()) == model


def test_a_rejection_keeps_its_code_message_and_field_errors() -> None:
    [error] = [FieldError(loc=["items", 0, "service_date"], message="not a date")]
    record = rejected(_rejection([error]))
    assert record.rejection == RejectionRecord(
        code=RejectionCode.INVALID_COMMAND,
        message="what went wrong",
        errors=[FieldErrorRecord(loc=["items", 0, "service_date"], message="not a date")],
    )
    assert (record.outcome, record.order_id, record.recorded_at) == ("rejected", "ORD-2", NOW)


@pytest.mark.parametrize(
    ("struct", "model"),
    [(OutcomeRecord, CommandOutcome), (RejectionRecord, CommandRejection), (FieldErrorRecord, FieldError)],
)
def test_the_records_have_the_models_fields_in_its_order(
    struct: type[msgspec.Struct], model: type[BaseModel]
) -> None:
    """A field added to the model fails here until the record has it too."""
    assert struct.__struct_fields__ == tuple(model.model_fields)
