"""Local effects are stored in the outbox as JSON: the bytes this version writes are the ones the pydantic
models wrote before the effects became msgspec structs, so an entry left by either version is carried out
by the other."""

from datetime import UTC, datetime

import msgspec
import pytest

from service.domain.command_outcomes import OutcomeRecord
from service.domain.local_effects import (
    CancelConfirmationTimeout,
    Effect,
    IndexOrder,
    RecordAnomaly,
    RecordCommandOutcome,
    RefundEntitlement,
    ScheduleChangeTimeout,
    ScheduleConfirmationTimeout,
    ScheduleNoShow,
    ScheduleWaitlistTimeout,
)
from service.store.effect_runner import decode_effect, encode_effect

D = datetime(2026, 12, 2, 10, 30, 0, 123000, tzinfo=UTC)
outcome = OutcomeRecord(
    command_id="cmd-1",
    client_id="client-a",
    command_type="create_prebooking",
    order_id="ORD-1",
    outcome="applied",
    sequences=[1],
    recorded_at=D,
)
effects = [
    ScheduleConfirmationTimeout(client_id="client-a", order_id="ORD-1", deadline=D),
    ScheduleWaitlistTimeout(client_id="client-a", order_id="ORD-1", deadline=D),
    ScheduleNoShow(client_id="client-a", order_id="ORD-1", deadline=D),
    ScheduleChangeTimeout(client_id="client-a", order_id="ORD-1", deadline=D),
    CancelConfirmationTimeout(client_id="client-a", order_id="ORD-1"),
    RefundEntitlement(client_id="client-a", credential="CARD-1", consumption_id="in-1"),
    RecordAnomaly(client_id="client-a", order_id="ORD-1", input_id="in-2", anomaly="LATE_CONFIRMATION"),
    IndexOrder(client_id="client-a", order_id="ORD-1", created_at=D),
    RecordCommandOutcome(fingerprint="f1", outcome=outcome),
]

STORED_BEFORE = [
    b'{"kind":"schedule_confirmation_timeout","client_id":"client-a","order_id":"ORD-1","deadline":"2026-12-02T10:30:00.123000Z"}',
    b'{"kind":"schedule_waitlist_timeout","client_id":"client-a","order_id":"ORD-1","deadline":"2026-12-02T10:30:00.123000Z"}',
    b'{"kind":"schedule_no_show","client_id":"client-a","order_id":"ORD-1","deadline":"2026-12-02T10:30:00.123000Z"}',
    b'{"kind":"schedule_change_timeout","client_id":"client-a","order_id":"ORD-1","deadline":"2026-12-02T10:30:00.123000Z"}',
    b'{"kind":"cancel_confirmation_timeout","client_id":"client-a","order_id":"ORD-1"}',
    b'{"kind":"refund_entitlement","client_id":"client-a","credential":"CARD-1","consumption_id":"in-1"}',
    b'{"kind":"record_anomaly","client_id":"client-a","order_id":"ORD-1","input_id":"in-2","anomaly":"LATE_CONFIRMATION"}',
    b'{"kind":"index_order","client_id":"client-a","order_id":"ORD-1","created_at":"2026-12-02T10:30:00.123000Z"}',
    b'{"kind":"record_command_outcome","fingerprint":"f1","outcome":{"command_id":"cmd-1","client_id":"client-a","command_type":"create_prebooking","order_id":"ORD-1","outcome":"applied","sequences":[1],"rejection":null,"recorded_at":"2026-12-02T10:30:00.123000Z"}}',
]
"""What the pydantic models wrote for `effects` (printed by the commit before the change)."""


@pytest.mark.parametrize(("effect", "stored"), list(zip(effects, STORED_BEFORE, strict=True)))
def test_an_effect_is_stored_as_before_and_read_back(effect: Effect, stored: bytes) -> None:
    assert encode_effect(effect) == stored
    assert decode_effect(stored) == effect


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_effect(b'{"kind":"launch_rockets","client_id":"client-a"}')
