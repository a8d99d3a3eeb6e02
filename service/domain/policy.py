"""The rules a decision needs from outside the order: time limits and resource rules."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

DEFAULT_WALK_IN_CANCELLATION_WINDOW = timedelta(minutes=30)
DEFAULT_CONFIRMATION_TIMEOUT = timedelta(minutes=2)
DEFAULT_ORDER_RETENTION = timedelta(days=30)
DEFAULT_WAITLIST_TIMEOUT = timedelta(hours=2)


@dataclass(frozen=True, kw_only=True)
class Policy:
    """Per-deployment rules; per-resource cancellation windows override the default."""

    confirmation_timeout: timedelta = DEFAULT_CONFIRMATION_TIMEOUT
    waitlist_timeout: timedelta = DEFAULT_WAITLIST_TIMEOUT
    """How long after its creation an order with a waitlisted item may stay Pending; it extends the
    confirmation deadline only if longer than `confirmation_timeout`."""
    walk_in_cancellation_window: timedelta = DEFAULT_WALK_IN_CANCELLATION_WINDOW
    cancellation_windows: Mapping[str, timedelta] = field(default_factory=dict)
    order_retention: timedelta = DEFAULT_ORDER_RETENTION
    """How long a finished order is kept (see `service.domain.retention`)."""

    @property
    def waitlist_extends(self) -> bool:
        """Whether a waitlisted item moves the order's deadline from the confirmation to the waitlist one."""
        return self.waitlist_timeout > self.confirmation_timeout

    def cancellation_window(self, resource_id: str) -> timedelta:
        """How long after a walk-in usage its resource's staff may still cancel it."""
        return self.cancellation_windows.get(resource_id, self.walk_in_cancellation_window)
