"""Effects on state outside the order that a decision asks for; they ride in the order's outbox.

Each is idempotent, so that carrying it out again after a crash changes nothing more. The store carries
them out (`service.store.effect_runner`). `EntitlementCheck` is the one input the other way: what consuming
a walk-in's units said, before the walk-in is decided.

Effects are internal data, built for nearly every input and stored in the outbox: msgspec structs, tagged
by `kind` as the pydantic models they replace were, so that their stored JSON did not change
(`tests/unit/test_local_effects.py`).
"""

from datetime import datetime
from enum import StrEnum

import msgspec

from service.domain.command_outcomes import OutcomeRecord


class _Effect(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    """An effect, stored as `{"kind": <its tag>, ...its fields}`."""


class ScheduleConfirmationTimeout(_Effect, tag="schedule_confirmation_timeout", frozen=True):
    """Fail the order if it is still Pending at `deadline`."""

    client_id: str
    order_id: str
    deadline: datetime


class ScheduleWaitlistTimeout(_Effect, tag="schedule_waitlist_timeout", frozen=True):
    """Fail the order if still Pending at `deadline`: the deadline of an order with a waitlisted item."""

    client_id: str
    order_id: str
    deadline: datetime


class ScheduleNoShow(_Effect, tag="schedule_no_show", frozen=True):
    """Declare the confirmed order's unused services NOT_CLAIMED at `deadline` (its last service date plus
    the resource's grace)."""

    client_id: str
    order_id: str
    deadline: datetime


class ScheduleChangeTimeout(_Effect, tag="schedule_change_timeout", frozen=True):
    """Withdraw the order's pending change (`change_order`) if its resource has not confirmed it by
    `deadline`."""

    client_id: str
    order_id: str
    deadline: datetime


class CancelConfirmationTimeout(_Effect, tag="cancel_confirmation_timeout", frozen=True):
    """The order left Pending: its confirmation deadline, and its waitlist deadline if any, no longer
    matter."""

    client_id: str
    order_id: str


class RefundEntitlement(_Effect, tag="refund_entitlement", frozen=True):
    """Give back the units that the walk-in input `consumption_id` took from a credential."""

    client_id: str
    credential: str
    consumption_id: str


class RecordAnomaly(_Effect, tag="record_anomaly", frozen=True):
    """Keep a visible record of an input that changed no status for a reason worth a look."""

    client_id: str
    order_id: str
    input_id: str
    anomaly: str


class IndexOrder(_Effect, tag="index_order", frozen=True):
    """List a new order among its client's orders (the Order Details API pages through them)."""

    client_id: str
    order_id: str
    created_at: datetime


class RecordCommandOutcome(_Effect, tag="record_command_outcome", frozen=True):
    """Keep what became of a command for `GET /v1/commands/{command_id}`, if it still holds its command_id
    (the one whose payload's `fingerprint` claimed it): a rejection for reusing the id never replaces it."""

    fingerprint: str
    outcome: OutcomeRecord


Effect = (
    ScheduleConfirmationTimeout
    | ScheduleWaitlistTimeout
    | ScheduleNoShow
    | ScheduleChangeTimeout
    | CancelConfirmationTimeout
    | RefundEntitlement
    | RecordAnomaly
    | IndexOrder
    | RecordCommandOutcome
)


class EntitlementCheck(StrEnum):
    """What consuming a walk-in's entitlement units said, decided before the walk-in itself."""

    CONSUMED = "consumed"
    UNKNOWN_CREDENTIAL = "unknown"
    EXHAUSTED = "exhausted"
