"""Effects on state outside the order that a decision asks for; they ride in the order's outbox.

Each is idempotent, so that carrying it out again after a crash changes nothing more. The store carries
them out (`service.store.effect_runner`). `EntitlementCheck` is the one input the other way: what consuming
a walk-in's units said, before the walk-in is decided.
"""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.domain.command_outcomes import CommandOutcome


class ScheduleConfirmationTimeout(BaseModel):
    """Fail the order if it is still Pending at `deadline`."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["schedule_confirmation_timeout"] = "schedule_confirmation_timeout"
    client_id: str
    order_id: str
    deadline: datetime


class ScheduleWaitlistTimeout(BaseModel):
    """Fail the order if still Pending at `deadline`: the deadline of an order with a waitlisted item."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["schedule_waitlist_timeout"] = "schedule_waitlist_timeout"
    client_id: str
    order_id: str
    deadline: datetime


class ScheduleNoShow(BaseModel):
    """Declare the confirmed order's unused services NOT_CLAIMED at `deadline` (its last service date plus
    the resource's grace)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["schedule_no_show"] = "schedule_no_show"
    client_id: str
    order_id: str
    deadline: datetime


class ScheduleChangeTimeout(BaseModel):
    """Withdraw the order's pending change (`change_order`) if its resource has not confirmed it by
    `deadline`."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["schedule_change_timeout"] = "schedule_change_timeout"
    client_id: str
    order_id: str
    deadline: datetime


class CancelConfirmationTimeout(BaseModel):
    """The order left Pending: its confirmation deadline, and its waitlist deadline if any, no longer
    matter."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["cancel_confirmation_timeout"] = "cancel_confirmation_timeout"
    client_id: str
    order_id: str


class RefundEntitlement(BaseModel):
    """Give back the units that the walk-in input `consumption_id` took from a credential."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["refund_entitlement"] = "refund_entitlement"
    client_id: str
    credential: str
    consumption_id: str


class RecordAnomaly(BaseModel):
    """Keep a visible record of an input that changed no status for a reason worth a look."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["record_anomaly"] = "record_anomaly"
    client_id: str
    order_id: str
    input_id: str
    anomaly: str


class IndexOrder(BaseModel):
    """List a new order among its client's orders (the Order Details API pages through them)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["index_order"] = "index_order"
    client_id: str
    order_id: str
    created_at: datetime


class RecordCommandOutcome(BaseModel):
    """Keep what became of a command for `GET /v1/commands/{command_id}`, if it still holds its command_id
    (the one whose payload's `fingerprint` claimed it): a rejection for reusing the id never replaces it."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["record_command_outcome"] = "record_command_outcome"
    fingerprint: str
    outcome: CommandOutcome


Effect = Annotated[
    ScheduleConfirmationTimeout
    | ScheduleWaitlistTimeout
    | ScheduleNoShow
    | ScheduleChangeTimeout
    | CancelConfirmationTimeout
    | RefundEntitlement
    | RecordAnomaly
    | IndexOrder
    | RecordCommandOutcome,
    Field(discriminator="kind"),
]


class EntitlementCheck(StrEnum):
    """What consuming a walk-in's entitlement units said, decided before the walk-in itself."""

    CONSUMED = "consumed"
    UNKNOWN_CREDENTIAL = "unknown"
    EXHAUSTED = "exhausted"
