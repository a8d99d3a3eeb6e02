"""The one place the service reads the wall clock; the domain gets time passed in. Time crosses into Redis
(scores, Lua arguments, hash fields) as whole epoch milliseconds, converted here both ways."""

from datetime import UTC, datetime


def utc_now() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


def to_epoch_ms(moment: datetime) -> int:
    """Whole milliseconds since the epoch (truncated)."""
    return int(moment.timestamp() * 1000)


def from_epoch_ms(epoch_ms: int | bytes) -> datetime:
    """The UTC moment of an epoch-milliseconds number, or of the digits Redis returns for one."""
    return datetime.fromtimestamp(int(epoch_ms) / 1000, UTC)
