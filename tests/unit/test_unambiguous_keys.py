"""Composite Redis keys and input ids never collide between two clients, whatever ids they choose."""

import asyncio
from collections.abc import Callable

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.base import CLIENT_ID_PATTERN
from contracts.commands import CancelOrder
from service.api.app import build_api
from service.api.dependencies import calling_client, command_publisher
from service.cli import build_parser
from service.config import ApiSettings
from service.consumers.inbound import command_input
from service.store.keys import command_claim_key, command_outcome_key, entitlement_key

ANY_CLIENT_IDENTIFIER = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}", fullmatch=True)
ANY_CLIENT_ID = st.from_regex(CLIENT_ID_PATTERN, fullmatch=True)
"""Client ids are narrower than the ids a client chooses (they also name its topics)."""

KeyOf = Callable[[str, str], str]


def _input_id(client_id: str, command_id: str) -> str:
    command = CancelOrder(command_id=command_id, client_id=client_id, order_id="ORD-1")
    return command_input(command).input_id


def _key_or_refusal(key_of: KeyOf, client_id: str, part: str) -> str | None:
    try:
        return key_of(client_id, part)
    except ValueError:
        return None


@pytest.mark.parametrize("key_of", [entitlement_key, command_claim_key, command_outcome_key])
def test_a_client_cannot_name_another_clients_credential_or_command(key_of: KeyOf) -> None:
    """The reported collisions: `acme` with `x/CARD-1` (or `x/K1`) reached `acme/x`'s `CARD-1` (`K1`)."""
    mine = _key_or_refusal(key_of, "acme", "x/CARD-1")
    theirs = _key_or_refusal(key_of, "acme/x", "CARD-1")
    assert mine is None or mine != theirs


@pytest.mark.parametrize("part", ["", "a/b", "a{b", "a}b"])
def test_key_parts_that_could_be_confused_are_refused(part: str) -> None:
    """The key functions do not rely on their callers: an ambiguous part is an error, never a key."""
    for key_of in (entitlement_key, command_claim_key, command_outcome_key):
        with pytest.raises(ValueError, match="not a valid key part"):
            key_of(part, "ok")
        with pytest.raises(ValueError, match="not a valid key part"):
            key_of("ok", part)


PAIRS = st.tuples(ANY_CLIENT_ID, ANY_CLIENT_IDENTIFIER)


@settings(max_examples=300, deadline=None)
@given(st.lists(PAIRS, min_size=2, max_size=2, unique=True))
def test_distinct_pairs_give_distinct_keys_and_input_ids(pairs: list[tuple[str, str]]) -> None:
    """For any two distinct (client, id) pairs the validators accept, every composite name differs."""
    (client_a, id_a), (client_b, id_b) = pairs
    for key_of in (entitlement_key, command_claim_key, command_outcome_key, _input_id):
        assert key_of(client_a, id_a) != key_of(client_b, id_b)


@settings(max_examples=100, deadline=None)
@given(ANY_CLIENT_ID, ANY_CLIENT_IDENTIFIER)
def test_the_hash_tag_is_the_whole_pair(client_id: str, part: str) -> None:
    """Braces cannot occur in valid ids, so the tag (and the Cluster slot) is exactly `<client>/<id>`."""
    for key_of in (entitlement_key, command_claim_key):
        key = key_of(client_id, part)
        assert key[key.index("{") + 1 : key.index("}")] == f"{client_id}/{part}"


class _Publisher:
    def __init__(self) -> None:
        self.published: list[object] = []

    async def publish(self, command: object) -> None:
        self.published.append(command)


async def _create_with_idempotency_key(key: str) -> tuple[httpx.Response, _Publisher]:
    app, publisher = build_api(ApiSettings()), _Publisher()
    app.dependency_overrides[calling_client] = lambda: "acme"
    app.dependency_overrides[command_publisher] = lambda: publisher
    body = {"order_id": "ORD-1", "items": []}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api") as api:
        answer = await api.post("/v1/orders", json=body, headers={"Idempotency-Key": key})
    return answer, publisher


def test_an_idempotency_key_with_a_slash_is_refused_at_the_door() -> None:
    """`Idempotency-Key: x/K1` of `acme` once blocked `acme/x`'s command `K1`."""
    answer, publisher = asyncio.run(_create_with_idempotency_key("x/K1"))
    assert answer.status_code == 422
    assert ["header", "idempotency-key"] in [e["loc"] for e in answer.json()["errors"]]
    assert publisher.published == []


@pytest.mark.parametrize("action", ["grant", "show"])
@pytest.mark.parametrize("option", ["--client", "--credential"])
def test_entitlements_refuse_a_slash_in_client_or_credential(
    action: str, option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`orders entitlements grant --client acme --credential x/CARD-1` would credit `acme/x`'s CARD-1."""
    argv = ["entitlements", action, "--client", "acme", "--credential", "CARD-1"]
    argv[argv.index(option) + 1] = "x/CARD-1"
    if action == "grant":
        argv += ["--units", "1"]
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code != 0
    assert "not a client identifier" in capsys.readouterr().err
