"""Time crosses into Redis as epoch milliseconds and comes back as the same UTC moment."""

from datetime import UTC, datetime, timedelta, timezone

from service.clock import from_epoch_ms, to_epoch_ms


def test_epoch_milliseconds_round_trip_through_redis_digits() -> None:
    """A moment to the millisecond comes back equal, from an int or from the bytes Redis returns."""
    moment = datetime(2026, 11, 23, 12, 30, 15, 123000, tzinfo=UTC)
    assert to_epoch_ms(moment) == 1_795_437_015_123
    assert from_epoch_ms(to_epoch_ms(moment)) == moment
    assert from_epoch_ms(str(to_epoch_ms(moment)).encode()) == moment


def test_epoch_milliseconds_ignore_the_offset_and_truncate_below_a_millisecond() -> None:
    """The same instant in another zone is the same number; microseconds below a millisecond are dropped."""
    utc = datetime(2026, 1, 1, 0, 0, 0, 999, tzinfo=UTC)
    elsewhere = utc.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert to_epoch_ms(utc) == to_epoch_ms(elsewhere) == to_epoch_ms(utc.replace(microsecond=0))
    assert from_epoch_ms(to_epoch_ms(elsewhere)).tzinfo is UTC
