"""A command's claim on its command_id, taken when its batch is read (`OrderStore.load`), on one Redis node
and on a Cluster: who holds it is known in one round trip when it is new, and read only when it is held."""

import uuid

import pytest
from redis.asyncio import Redis

from service.store.keys import command_claim_key
from service.store.orders import CommandClaim, OrderStore
from service.store.raw_pipeline import Arg, RawPipeline


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of every command the store's pipelines send, in order (they are still sent)."""
    names: list[str] = []
    command = RawPipeline.command

    def spy(self: RawPipeline, key: str, *args: Arg) -> None:
        names.append(str(args[0]))
        command(self, key, *args)

    monkeypatch.setattr(RawPipeline, "command", spy)
    return names


def _client() -> str:
    return f"client-{uuid.uuid4().hex[:8]}"


async def test_new_claims_are_taken_without_reading_them_back(store_redis: Redis, sent: list[str]) -> None:
    client_id = _client()
    claims = [CommandClaim(client_id, f"cmd-{n}", f"fp-{n}") for n in range(5)]

    _, _, holders = await OrderStore(store_redis).load([], [], claims, 100)

    assert holders == [f"fp-{n}".encode() for n in range(5)]
    assert sent == ["SET"] * 5  # no GET: each SET NX said the claim was this command's
    for claim in claims:
        key = command_claim_key(client_id, claim.command_id)
        assert await store_redis.get(key) == claim.fingerprint.encode()
        assert 99_000 < await store_redis.pttl(key) <= 100_000


async def test_a_held_claim_is_read_back_with_its_holder(store_redis: Redis, sent: list[str]) -> None:
    client_id = _client()
    await store_redis.set(command_claim_key(client_id, "cmd-held"), "fp-earlier", ex=100)
    claims = [
        CommandClaim(client_id, "cmd-new", "fp-new"),
        CommandClaim(client_id, "cmd-held", "fp-other-payload"),
        CommandClaim(client_id, "cmd-twice", "fp-first"),
        CommandClaim(client_id, "cmd-twice", "fp-second"),  # the same command_id again in one batch
    ]

    _, _, holders = await OrderStore(store_redis).load([], [], claims, 100)

    assert holders == [b"fp-new", b"fp-earlier", b"fp-first", b"fp-first"]
    # One SET per claim, then SET and GET again for the two found held: nothing more.
    assert sent == ["SET"] * 4 + ["SET", "GET"] * 2
