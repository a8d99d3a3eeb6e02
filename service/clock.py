"""The one place the service reads the wall clock; the domain gets time passed in."""

from datetime import UTC, datetime


def utc_now() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)
