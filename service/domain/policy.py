"""The rules a decision needs from outside the order: time limits and resource rules."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

DEFAULT_WALK_IN_CANCELLATION_WINDOW = timedelta(minutes=30)
DEFAULT_CONFIRMATION_TIMEOUT = timedelta(minutes=2)
DEFAULT_ORDER_RETENTION = timedelta(days=30)
DEFAULT_WAITLIST_TIMEOUT = timedelta(hours=2)
DEFAULT_NO_SHOW_GRACE = timedelta(hours=12)


@dataclass(frozen=True, kw_only=True)
class Policy:
    """Per-deployment rules; per-resource cancellation windows override the default."""

    confirmation_timeout: timedelta = DEFAULT_CONFIRMATION_TIMEOUT
    waitlist_timeout: timedelta = DEFAULT_WAITLIST_TIMEOUT
    """How long after its creation an order with a waitlisted item may stay Pending; it extends the
    confirmation deadline only if longer than `confirmation_timeout`."""
    walk_in_cancellation_window: timedelta = DEFAULT_WALK_IN_CANCELLATION_WINDOW
    cancellation_windows: Mapping[str, timedelta] = field(default_factory=dict)
    no_show_grace: timedelta = DEFAULT_NO_SHOW_GRACE
    """How long after the end of its service date (24:00 UTC) a confirmed booking nobody used is a no-show;
    12 hours by default, which covers the local dates of every time zone."""
    no_show_graces: Mapping[str, timedelta] = field(default_factory=dict)
    """Per-resource no-show graces, overriding the default."""
    order_retention: timedelta = DEFAULT_ORDER_RETENTION
    """How long a finished order is kept (see `service.domain.retention`)."""

    @property
    def waitlist_extends(self) -> bool:
        """Whether a waitlisted item moves the order's deadline from the confirmation to the waitlist one."""
        return self.waitlist_timeout > self.confirmation_timeout

    def cancellation_window(self, resource_id: str) -> timedelta:
        """How long after a walk-in usage its resource's staff may still cancel it."""
        return self.cancellation_windows.get(resource_id, self.walk_in_cancellation_window)

    def no_show_at(self, resource_id: str, service_date: str) -> datetime:
        """When an unused booking at `resource_id` for `service_date` (ISO) becomes a no-show."""
        day_end = datetime.combine(date.fromisoformat(service_date), time.min, UTC) + timedelta(days=1)
        return day_end + self.no_show_graces.get(resource_id, self.no_show_grace)


def whole_milliseconds(moment: datetime) -> datetime:
    """`moment` without its sub-millisecond part: the precision of the Redis timers, so that a deadline a
    timer fires at is never later than the one the handler compares the clock with."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
