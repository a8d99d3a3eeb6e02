"""The retention policy: how long each kind of order is kept, and the settings that must agree with it."""

from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from pydantic import ValidationError

from contracts.statuses import OrderStatus
from service.config import Settings
from service.domain.decide import Context, decide
from service.domain.order import Order
from service.domain.policy import Policy
from service.domain.retention import expires_at
from service.kafka import service_topics, topic_configs
from testkit.factories import SERVICE_DATE, prebooking

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
RETENTION = timedelta(days=30)


def order(status: OrderStatus) -> Order:
    created = decide(None, prebooking("A", "B"), Context(NOW, Policy()))  # on SERVICE_DATE
    assert created.order is not None
    return msgspec.structs.replace(created.order, status=status)


def test_a_pending_order_is_kept() -> None:
    """A Pending order has no expiry: it may still change."""
    assert expires_at(order(OrderStatus.PENDING), RETENTION) is None


@pytest.mark.parametrize("status", [OrderStatus.USED, OrderStatus.CANCELLED, OrderStatus.FAILED])
def test_a_finished_order_is_kept_for_the_retention_after_its_last_change(status: OrderStatus) -> None:
    """A Used, Cancelled or Failed order expires the retention after its last change."""
    assert expires_at(order(status), RETENTION) == NOW + RETENTION


def test_a_confirmed_order_is_kept_for_the_retention_after_its_service_date() -> None:
    """A Confirmed order is kept for the retention after the end of its service day."""
    end_of_service_day = datetime.combine(SERVICE_DATE, datetime.max.time(), UTC)
    assert expires_at(order(OrderStatus.CONFIRMED), RETENTION) == end_of_service_day + RETENTION


def test_a_confirmed_order_changed_after_its_service_date_counts_from_the_change() -> None:
    """A Confirmed order changed after its service day counts the retention from that change."""
    # Relative to SERVICE_DATE, which moves with the day the tests run: a fixed date falls on it some day.
    changed = datetime.combine(SERVICE_DATE + timedelta(days=1), datetime.min.time(), UTC)
    late = msgspec.structs.replace(order(OrderStatus.CONFIRMED), updated_at=changed)
    assert expires_at(late, RETENTION) == changed + RETENTION


def test_orders_cannot_be_forgotten_before_their_command_ids() -> None:
    """A re-delivered command whose order was forgotten but whose command_id is still claimed would create
    the order a second time."""
    with pytest.raises(ValidationError, match="order_retention_seconds"):
        Settings(
            order_retention_seconds=3600, idempotency_retention_seconds=7200, topic_retention_ms=3_600_000
        )
    with pytest.raises(ValidationError, match="cancellation window"):
        Settings(
            order_retention_seconds=7200,
            idempotency_retention_seconds=3600,
            topic_retention_ms=3_600_000,
            cancellation_windows={"L": 9000},
        )


def test_topics_forget_inputs_before_their_command_ids_expire() -> None:
    """An input re-read after its claim expired would be new again: Kafka must have dropped it by then."""
    with pytest.raises(ValidationError, match="topic_retention_ms"):
        Settings(topic_retention_ms=8 * 24 * 3600 * 1000)


def test_topics_are_created_with_their_retention() -> None:
    """Every service topic is created with the topic retention, the dead-letter topic with its own."""
    settings = Settings(topic_retention_ms=3_600_000, topic_dead_letter_retention_ms=86_400_000)
    configs = topic_configs(settings)
    assert configs[settings.topic_commands] == {"retention.ms": "3600000"}
    assert configs[settings.topic_dead_letter] == {"retention.ms": "86400000"}
    assert set(configs) == set(service_topics(settings))
