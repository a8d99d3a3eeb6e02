"""`GET /v1/commands/{command_id}` on the real broker and Redis: accepted, applied, rejected, per client."""

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from contracts.commands import CancelOrder
from contracts.events import CommandRejected, FieldError
from contracts.statuses import RejectionCode
from service.app import build_service
from service.config import Settings
from service.devstack import Endpoints
from service.domain.command_outcomes import accepted, decided, rejected
from service.domain.local_effects import RecordCommandOutcome
from service.kafka import ensure_topics, service_topics
from service.store.command_outcomes import CommandOutcomeStore
from service.store.keys import command_claim_key, command_outcome_key
from service.store.orders import CommandClaim, OrderStore
from testkit.api_keys import issue_key
from testkit.factories import SERVICE_DATE, prebooking, unique
from testkit.kafka_tap import TopicTap, produce
from tests.integration.conftest import isolated_settings, serving_api, until_assigned
from tests.waiting import eventually

pytestmark = pytest.mark.integration

ITEM = {
    "resource_id": "RES-OK",
    "product_type": "FAST_TRACK",
    "service_date": SERVICE_DATE.isoformat(),
    "passengers": [{"passenger_id": "PAX-1", "name": "Ada"}],
}


async def bearer(redis: Redis, client_id: str) -> dict[str, str]:
    issued = await issue_key(redis, client_id)
    return {"Authorization": f"Bearer {issued.token}"}


async def create(api: httpx.AsyncClient, headers: dict[str, str], order_id: str, command_id: str) -> None:
    body = {"order_id": order_id, "items": [ITEM]}
    response = await api.post("/v1/orders", json=body, headers={**headers, "Idempotency-Key": command_id})
    assert response.status_code == 202, response.text


async def outcome_once(
    api: httpx.AsyncClient, headers: dict[str, str], command_id: str, outcome: str
) -> dict[str, Any] | None:
    response = await api.get(f"/v1/commands/{command_id}", headers=headers)
    body: dict[str, Any] | None = response.json() if response.status_code == 200 else None
    return body if body is not None and body["outcome"] == outcome else None


async def outcome_of(
    api: httpx.AsyncClient, headers: dict[str, str], command_id: str, outcome: str
) -> dict[str, Any]:
    """The command's outcome once it is `outcome`."""
    return await eventually(lambda: outcome_once(api, headers, command_id, outcome))


async def test_a_command_is_accepted_until_the_service_decides_it_then_applied(stack: Endpoints) -> None:
    """Published through the API while no service runs: `accepted`; once a service starts, `applied` with
    the sequence of the event it produced."""
    settings = isolated_settings(stack, f"t{uuid.uuid4().hex[:8]}")
    await ensure_topics(settings.kafka_bootstrap_servers, service_topics(settings), 2, 1)
    async with serving_api(settings) as api:
        redis = Redis.from_url(settings.redis_url.get_secret_value())
        headers = await bearer(redis, "client-a")
        order_id, command_id = unique("ORD"), unique("create")
        await create(api, headers, order_id, command_id)

        waiting = (await api.get(f"/v1/commands/{command_id}", headers=headers)).json()
        assert (waiting["outcome"], waiting["order_id"], waiting["command_type"]) == (
            "accepted",
            order_id,
            "create_prebooking",
        )
        assert (waiting["sequences"], waiting["rejection"]) == ([], None)

        service = build_service(settings)
        await service.start()
        try:
            await until_assigned(service.broker)
            applied = await outcome_of(api, headers, command_id, "applied")
        finally:
            await service.stop()
            await redis.aclose()
    assert (applied["order_id"], applied["sequences"], applied["rejection"]) == (order_id, [1], None)


@pytest.mark.usefixtures("service", "simulator")
async def test_commands_over_kafka_are_applied_with_the_sequence_they_produced(
    api: httpx.AsyncClient, settings: Settings, producer: AIOKafkaProducer, redis: Redis
) -> None:
    """A cancellation sent over Kafka after the resource confirmed: `applied`, with sequence 3."""
    headers = await bearer(redis, "client-a")
    command = prebooking(client_id="client-a")
    await produce(producer, settings.topic_commands, command, command.order_id)
    created = await outcome_of(api, headers, command.command_id, "applied")
    assert created["sequences"] == [1]
    await eventually(lambda: _status_is(api, headers, command.order_id, 1))

    cancel = CancelOrder(command_id=unique("cancel"), client_id="client-a", order_id=command.order_id)
    await produce(producer, settings.topic_commands, cancel, cancel.order_id)

    cancelled = await outcome_of(api, headers, cancel.command_id, "applied")
    assert (cancelled["command_type"], cancelled["order_id"], cancelled["sequences"]) == (
        "cancel_order",
        command.order_id,
        [3],
    )


async def _status_is(api: httpx.AsyncClient, headers: dict[str, str], order_id: str, status: int) -> bool:
    response = await api.get(f"/v1/orders/{order_id}", headers=headers)
    return response.status_code == 200 and response.json()["status"] == status


@pytest.mark.usefixtures("service", "simulator")
async def test_a_rejected_command_has_its_code_and_a_reused_command_id_keeps_its_holders_outcome(
    api: httpx.AsyncClient, settings: Settings, redis: Redis, tap: TopicTap
) -> None:
    """A second create of one order id is `rejected` with ORDER_ALREADY_EXISTS; a different command sent
    under the first one's command_id is rejected with IDEMPOTENCY_CONFLICT on Kafka, and the first one's
    outcome stays `applied`."""
    headers = await bearer(redis, "client-a")
    order_id, first, second = unique("ORD"), unique("create"), unique("create")
    await create(api, headers, order_id, first)
    await outcome_of(api, headers, first, "applied")

    await create(api, headers, order_id, second)
    refused = await outcome_of(api, headers, second, "rejected")
    assert refused["rejection"]["code"] == "ORDER_ALREADY_EXISTS"
    assert refused["rejection"]["message"] and refused["sequences"] == []

    await create(api, headers, unique("ORD"), first)
    await tap.wait_for(
        lambda: tap.decoded(
            settings.topic_command_rejected,
            CommandRejected,
            lambda r: r.command_id == first and r.code is RejectionCode.IDEMPOTENCY_CONFLICT,
        )
    )
    kept = (await api.get(f"/v1/commands/{first}", headers=headers)).json()
    assert (kept["outcome"], kept["order_id"], kept["sequences"]) == ("applied", order_id, [1])


@pytest.mark.usefixtures("service", "simulator")
async def test_another_clients_command_id_is_answered_like_an_unknown_one(
    api: httpx.AsyncClient, redis: Redis
) -> None:
    """No existence leak: the same 404 body for another client's command_id as for one never sent."""
    owner, stranger = await bearer(redis, "client-a"), await bearer(redis, "client-b")
    command_id = unique("create")
    await create(api, owner, unique("ORD"), command_id)
    await outcome_of(api, owner, command_id, "applied")

    theirs = await api.get(f"/v1/commands/{command_id}", headers=stranger)
    unknown = await api.get(f"/v1/commands/{unique('never-sent')}", headers=stranger)

    assert theirs.status_code == unknown.status_code == 404
    assert theirs.json() == unknown.json()
    assert theirs.json()["code"] == "NOT_FOUND"
    assert (await api.get(f"/v1/commands/{command_id}")).status_code == 401


@pytest.mark.usefixtures("service", "simulator")
async def test_the_outcome_expires_with_the_command_ids_claim(
    api: httpx.AsyncClient, settings: Settings, redis: Redis
) -> None:
    """The outcome lives as long as the claim: ORDERS_IDEMPOTENCY_RETENTION_SECONDS from the first sight."""
    headers = await bearer(redis, "client-a")
    command_id = unique("create")
    await create(api, headers, unique("ORD"), command_id)
    await outcome_of(api, headers, command_id, "applied")

    outcome_ttl = await redis.pttl(command_outcome_key("client-a", command_id))
    claim_ttl = await redis.pttl(command_claim_key("client-a", command_id))

    retention_ms = settings.idempotency_retention_seconds * 1000
    assert retention_ms - 60_000 < outcome_ttl <= retention_ms
    assert abs(outcome_ttl - claim_ttl) < 1000


async def test_the_recording_rules_hold_on_one_node_and_on_a_cluster(store_redis: Redis) -> None:
    """`first` (the API's accepted) never replaces; `holder` (the service) needs the claim's fingerprint and
    takes the claim's expiry; `unanswered` (INVALID_COMMAND from decoding) replaces only `accepted`."""
    outcomes = CommandOutcomeStore(store_redis, retention_seconds=3600)
    client_id, at = unique("client"), datetime.now(UTC)
    command = prebooking(client_id=client_id)
    assert await outcomes.record_accepted(accepted(command, at))
    assert not await outcomes.record_accepted(accepted(command, at))

    await OrderStore(store_redis).load([], [], [CommandClaim(client_id, command.command_id, "fp-held")], 100)
    applied = decided(command, None, [], at)
    by_other, by_holder = (RecordCommandOutcome(fingerprint=f, outcome=applied) for f in ("fp-x", "fp-held"))
    assert await outcomes.record_decided([by_other]) == [False]
    assert await outcomes.record_decided([by_holder]) == [True]
    assert 99_000 < await store_redis.pttl(command_outcome_key(client_id, command.command_id)) <= 100_000
    invalid = rejected(_rejection(command.command_id, client_id, command.order_id, at))
    assert await outcomes.record_unanswered_rejections([invalid]) == [False]  # applied stays

    other = prebooking(client_id=client_id)
    assert await outcomes.record_accepted(accepted(other, at))
    refused = rejected(_rejection(other.command_id, client_id, other.order_id, at))
    assert await outcomes.record_unanswered_rejections([refused]) == [True]  # replaces accepted
    assert await outcomes.record_unanswered_rejections([refused]) == [False]  # but not a rejection
    found = await outcomes.get(client_id, other.command_id)
    assert found is not None and found.rejection is not None
    assert (found.outcome, found.rejection.code) == ("rejected", RejectionCode.INVALID_COMMAND)
    assert found.rejection.errors == [_error()]
    assert 3_500_000 < await store_redis.pttl(command_outcome_key(client_id, other.command_id)) <= 3_600_000
    assert await outcomes.get("someone-else", other.command_id) is None


def _rejection(command_id: str, client_id: str, order_id: str, at: datetime) -> CommandRejected:
    return CommandRejected(
        event_id=str(uuid.uuid4()),
        command_id=command_id,
        command_type="create_prebooking",
        order_id=order_id,
        client_id=client_id,
        code=RejectionCode.INVALID_COMMAND,
        message="the command does not match the contract",
        occurred_at=at,
        errors=[_error()],
    )


def _error() -> FieldError:
    return FieldError(loc=["items", 0, "passengers"], message="Field required")


@pytest.mark.usefixtures("service", "simulator")
async def test_an_invalid_command_shows_its_field_errors_until_its_fixed_copy_is_applied(
    api: httpx.AsyncClient, settings: Settings, producer: AIOKafkaProducer, redis: Redis
) -> None:
    """A command with a readable envelope that breaks the schema is `rejected` INVALID_COMMAND with its field
    errors for an HTTP-only client; the fixed command sent under the same command_id is then `applied`."""
    headers = await bearer(redis, "client-a")
    command = prebooking(client_id="client-a")
    broken = command.model_dump(mode="json")
    broken["items"][0]["service_date"] = "not-a-date"
    await produce(producer, settings.topic_commands, json.dumps(broken).encode(), command.order_id)

    refused = await outcome_of(api, headers, command.command_id, "rejected")
    assert refused["rejection"]["code"] == "INVALID_COMMAND"
    assert [e["loc"] for e in refused["rejection"]["errors"]] == [["items", 0, "service_date"]]
    assert "not-a-date" not in json.dumps(refused), "no input value is repeated"

    await produce(producer, settings.topic_commands, command, command.order_id)
    applied = await outcome_of(api, headers, command.command_id, "applied")
    assert (applied["sequences"], applied["rejection"]) == ([1], None)
