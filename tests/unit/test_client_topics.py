"""Topic names per layout, the client id alphabet at `orders client create`, and CLIENT_MISMATCH decoding."""

import json
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from aiokafka import ConsumerRecord

from contracts.events import CommandRejected
from contracts.statuses import RejectionCode
from service.config import Settings, TopicLayout
from service.consumers.inbound import Inbound, command_decoder
from service.kafka import client_of_topic, client_topics, service_topics

PER_CLIENT = Settings(topic_layout=TopicLayout.PER_CLIENT)


def test_the_shared_layout_keeps_its_topics() -> None:
    """Every client uses the shared topics, and the service creates all six."""
    shared = Settings()
    assert client_topics(shared, "acme-air").all() == [
        shared.topic_commands, shared.topic_status_changed, shared.topic_command_rejected
    ]  # fmt: skip
    assert len(service_topics(shared)) == 6


@pytest.mark.parametrize(
    ("topic", "client"),
    [("orders.commands.acme-air", "acme-air"), ("orders.commands.a.b", None), ("orders.commands", None),
     ("orders.commands-x.acme", None), ("orders.commands.-a", None)],
)  # fmt: skip
def test_the_client_of_a_topic_is_read_back_from_its_name(topic: str, client: str | None) -> None:
    """Only `<commands topic>.<client id>` names a client."""
    assert client_of_topic(PER_CLIENT.topic_commands, topic) == client
    if client:
        assert client_topics(PER_CLIENT, client).commands == topic


def _record(topic: str, command: dict[str, str]) -> ConsumerRecord:
    value = json.dumps(command).encode()
    return ConsumerRecord(topic, 0, 7, 0, 0, b"ORD-1", value, None, 5, len(value), [])


def _decode(topic: str, client_id: str) -> object:
    command = {"type": "redeem_order", "command_id": "c-1", "client_id": client_id, "order_id": "ORD-1"}
    decoder = command_decoder(64 * 1024, lambda t: client_of_topic(PER_CLIENT.topic_commands, t))
    return decoder.decode(_record(topic, command), datetime.now(UTC))


def test_a_command_naming_another_client_is_answered_to_the_sender() -> None:
    """The rejection is the topic's client's: its client_id, so it goes to the sender's topic."""
    rejection = _decode("orders.commands.acme-air", "beta-air")
    assert isinstance(rejection, CommandRejected)
    assert (rejection.code, rejection.client_id) == (RejectionCode.CLIENT_MISMATCH, "acme-air")
    assert isinstance(_decode("orders.commands.acme-air", "acme-air"), Inbound)


@pytest.mark.parametrize("client", ["acme:eu", "acme.eu", "acme_eu", "-acme", "a" * 65])
def test_client_create_refuses_a_client_id_outside_the_alphabet(client: str) -> None:
    """One line on stderr, exit 2, before Kafka or Redis is touched."""
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "client", "create", f"--client={client}"],
        capture_output=True, text=True, check=False, env={"ORDERS_REDIS_URL": "redis://127.0.0.1:1/0"},
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "invalid client id" in done.stderr


def test_the_publisher_routes_an_entry_by_the_client_it_carries() -> None:
    """In the per_client layout an entry's own client picks its topics: its message is not parsed again (a
    value that is no JSON still goes to the right topic), and one without a client falls back to parsing."""
    from faststream.kafka import KafkaBroker  # noqa: PLC0415

    from service.consumers.publishing import OutboxPublisher  # noqa: PLC0415
    from service.store.outbox import Destination, OutboxEntry  # noqa: PLC0415

    publisher = OutboxPublisher(KafkaBroker(), PER_CLIENT)
    carried = OutboxEntry(Destination.STATUS_CHANGED, "ORD-1", b"not json", client_id="acme-air")
    parsed = OutboxEntry(Destination.COMMAND_REJECTED, "ORD-1", json.dumps({"client_id": "beta"}).encode())
    assert publisher._topic_of(carried) == client_topics(PER_CLIENT, "acme-air").status_changed
    assert publisher._topic_of(parsed) == client_topics(PER_CLIENT, "beta").command_rejected
    request = OutboxEntry(Destination.RESOURCE_REQUESTS, "ORD-1", b"{}", client_id="acme-air")
    assert publisher._topic_of(request) == PER_CLIENT.topic_resource_requests, "requests are not per client"
