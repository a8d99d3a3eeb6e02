"""Decoding Kafka records: duplicate keys refused, replies read tolerantly, invalid commands answered."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from pydantic import TypeAdapter, ValidationError

from contracts.commands import order_command_adapter
from contracts.events import CommandRejected, DeadLetter
from contracts.resources import ReservationConfirmed, resource_reply_adapter
from contracts.statuses import RejectionCode
from service import metrics
from service.consumers.inbound import Inbound, command_decoder, reply_decoder, reservation_client
from tests.waiting import counter

NOW = datetime(2026, 12, 20, 9, 30, tzinfo=UTC)
COMMANDS = command_decoder(64 * 1024)
REPLIES = reply_decoder(64 * 1024)


def record(value: bytes | str, key: str | None = "ORD-1", offset: int = 7) -> ConsumerRecord:
    raw = value.encode() if isinstance(value, str) else value
    return ConsumerRecord(
        "orders.commands", 0, offset, 0, 0, key.encode() if key is not None else None, raw, None, 1, 1, []
    )


def prebooking(**overrides: Any) -> dict[str, Any]:
    item = {
        "resource_id": "LHR-FT",
        "product_type": "FAST_TRACK",
        "service_date": "2026-12-24",
        "passengers": [{"passenger_id": "PAX-1", "name": "Ada Lovelace"}],
    }
    command = {"type": "create_prebooking", "command_id": "cmd-1", "client_id": "acme", "order_id": "ORD-1"}
    return {**command, "items": [{**item, **overrides.pop("item", {})}], **overrides}


def confirmed(**overrides: Any) -> dict[str, Any]:
    reply = {"type": "confirmed", "reply_id": "op-1", "order_id": "ORD-1", "reservation_id": "ORD-1/ITEM-1"}
    return {**reply, **overrides}


def dead(decoded: object, error_type: str) -> DeadLetter:
    assert isinstance(decoded, DeadLetter), decoded
    assert decoded.error_type == error_type, decoded.error
    return decoded


# --- JSON: parsed as pydantic's validate_json parses it, but refusing repeated keys ----------------------


def _accepted_by_validate_json(adapter: TypeAdapter[Any], raw: bytes) -> str:
    try:
        adapter.validate_json(raw)
    except ValidationError as error:
        return "NOT_JSON" if error.errors()[0]["type"] == "json_invalid" else "SCHEMA"
    return "ok"


def _outcome(decoded: object) -> str:
    if isinstance(decoded, DeadLetter):
        return decoded.error_type
    return "rejected" if isinstance(decoded, CommandRejected) else "ok"


EDGE_COMMANDS = {
    "date as an inexact timestamp": prebooking(item={"service_date": 20261224}),
    "date as digits": prebooking(item={"service_date": "20261224"}),
    "date as a midnight timestamp": prebooking(item={"service_date": 1798070400}),
    "date with a midnight time": prebooking(item={"service_date": "2026-12-24T00:00:00Z"}),
    "date with a time": prebooking(item={"service_date": "2026-12-24T10:00:00"}),
    "date as a week": prebooking(item={"service_date": "2026-W52"}),
    "date as a boolean": prebooking(item={"service_date": True}),
    "passengers as a string": prebooking(item={"passengers": "x"}),
    "passengers as an object": prebooking(item={"passengers": {"passenger_id": "PAX-1", "name": "A"}}),
    "no passengers": prebooking(item={"passengers": []}),
    "product type in lower case": prebooking(item={"product_type": "fast_track"}),
    "product type as a number": prebooking(item={"product_type": 1}),
    "name as a boolean": prebooking(item={"passengers": [{"passenger_id": "PAX-1", "name": True}]}),
    "name as a number": prebooking(item={"passengers": [{"passenger_id": "PAX-1", "name": 42}]}),
    "command_id as a boolean": prebooking(command_id=True),
    "command_id as a number": prebooking(command_id=1),
    "client_id as a float": prebooking(client_id=1.5),
    "order_id as null": prebooking(order_id=None),
    "items as null": prebooking(items=None),
    "type in upper case": prebooking(type="CREATE_PREBOOKING"),
    "valid": prebooking(),
}
EDGE_TEXTS = {
    "NaN for a string": json.dumps(prebooking()).replace('"cmd-1"', "NaN"),
    "a lone surrogate": json.dumps(prebooking()).replace("Ada Lovelace", "\\ud800"),
    "an integer of 5000 digits": json.dumps(prebooking()).replace('"acme"', "1" * 5000),
    "nested 300 deep": json.dumps(prebooking())[:-1] + ', "x": ' + "[" * 300 + "]" * 300 + "}",
    "nested 150 deep": json.dumps(prebooking())[:-1] + ', "x": ' + "[" * 150 + "]" * 150 + "}",
    "a byte order mark": "\ufeff" + json.dumps(prebooking()),
    "trailing text": json.dumps(prebooking()) + " x",
    "not UTF-8": json.dumps(prebooking()).replace("Ada", "\udcff"),
}


def _raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


@pytest.mark.parametrize(
    "raw",
    [json.dumps(c).encode() for c in EDGE_COMMANDS.values()] + [_raw(t) for t in EDGE_TEXTS.values()],
    ids=[*EDGE_COMMANDS, *EDGE_TEXTS],
)
def test_commands_are_accepted_exactly_when_validate_json_accepts_them(raw: bytes) -> None:
    """Parsing with jiter and validating the Python objects accepts and refuses what `validate_json` did:
    dates, enums, strings versus numbers and booleans, NaN, surrogates, depth, encodings."""
    expected = _accepted_by_validate_json(order_command_adapter, raw)
    decoded = COMMANDS.decode(record(raw), NOW)

    # An envelope that says who sent it turns a SCHEMA refusal into an answer; nothing else changes.
    assert _outcome(decoded) in ({expected} if expected != "SCHEMA" else {"SCHEMA", "rejected"})
    if isinstance(decoded, Inbound):
        assert decoded.message == order_command_adapter.validate_json(raw)


@pytest.mark.parametrize(
    "body",
    [
        confirmed(),
        confirmed(reply_id=7),
        confirmed(order_id=True),
        confirmed(reservation_id=None),
        confirmed(type="CONFIRMED"),
        {"type": "failed", **confirmed(type="failed"), "reason_code": "SOLD_OUT", "reason": 5},
        {**confirmed(type="failed"), "reason_code": "", "reason": "full"},
    ],
)
def test_replies_are_accepted_exactly_when_validate_json_accepts_them(body: dict[str, Any]) -> None:
    """The same for replies."""
    raw = json.dumps(body).encode()
    assert _outcome(REPLIES.decode(record(raw), NOW)) == _accepted_by_validate_json(
        resource_reply_adapter, raw
    )


CANCEL = '{"type": "cancel_order", "command_id": "c", "client_id": "a", "order_id": "ORD-1"'
PREBOOKING = json.dumps(prebooking())


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (CANCEL + ', "client_id": "b"}', "client_id"),
        (PREBOOKING.replace('"name": "Ada Lovelace"', '"name": "Ada", "name": "Eve"'), "name"),
        (
            PREBOOKING.replace('"resource_id": "LHR-FT"', '"resource_id": "A", "resource_id": "A"'),
            "resource_id",
        ),
        (CANCEL + ', "client\\u005fid": "b"}', "client_id"),
    ],
    ids=["top level", "inside a passenger", "same value twice", "escaped spelling"],
)
def test_a_repeated_key_is_dead_lettered_naming_the_key_not_its_values(text: str, key: str) -> None:
    """At any depth, even with equal values or spelt with an escape, never resolved to the last value."""
    letter = dead(COMMANDS.decode(record(text), NOW), "SCHEMA")

    assert f'duplicate key "{key}"' in letter.error
    assert not {"Ada", "Eve", '"a"', '"b"', "LHR"} & set(letter.error.split())


def test_a_repeated_key_in_a_reply_is_dead_lettered() -> None:
    """Replies refuse repeated keys as commands do: the contract does not say which value would count."""
    text = json.dumps(confirmed()).replace('"reply_id": "op-1"', '"reply_id": "op-1", "reply_id": "op-2"')

    assert 'duplicate key "reply_id"' in dead(REPLIES.decode(record(text), NOW), "SCHEMA").error


def test_a_repeated_key_in_text_that_is_not_json_is_not_json() -> None:
    """Text cut off after a repeated key is not JSON at all, and is said to be so."""
    text = '{"type": "cancel_order", "command_id": "c", "command_id": "c"'

    assert "Invalid JSON" in dead(COMMANDS.decode(record(text), NOW), "NOT_JSON").error


def test_the_same_key_in_sibling_objects_is_no_repetition() -> None:
    """Two passengers each have a `name`: that is two objects, each with its own keys."""
    passengers = [{"passenger_id": "PAX-1", "name": "Ada"}, {"passenger_id": "PAX-2", "name": "Eve"}]
    decoded = COMMANDS.decode(record(json.dumps(prebooking(item={"passengers": passengers}))), NOW)

    assert isinstance(decoded, Inbound)


# --- replies: a tolerant reader ----------------------------------------------------------------------------


def test_a_reply_with_unknown_fields_is_read_as_if_they_were_absent() -> None:
    """Top-level fields the contract does not name are ignored, by name; the fingerprint leaves them out, so a
    reply re-sent with one more field is a plain duplicate, not a REPLY_ID_CONFLICT."""
    plain = REPLIES.decode(record(json.dumps(confirmed())), NOW)
    extended = REPLIES.decode(record(json.dumps(confirmed(lounge_ref="LX-1", note={"a": [1]}))), NOW)

    assert isinstance(plain, Inbound) and isinstance(extended, Inbound)
    assert extended.message == plain.message == ReservationConfirmed(**confirmed())
    assert extended.fingerprint == plain.fingerprint
    assert (plain.ignored_fields, extended.ignored_fields) == ((), ("lounge_ref", "note"))


@pytest.mark.parametrize(
    "body",
    [
        confirmed(reply_id=42, lounge_ref="LX-1"),
        confirmed(order_id="ORD 1", lounge_ref="LX-1"),
        {k: v for k, v in confirmed(lounge_ref="LX-1").items() if k != "reservation_id"},
        confirmed(type="confirmed ", lounge_ref="LX-1"),
    ],
    ids=["wrong type", "bad identifier", "missing field", "unknown type"],
)
def test_a_reply_with_unknown_fields_still_has_every_known_field_checked(body: dict[str, Any]) -> None:
    """Tolerance covers fields the contract does not name, nothing else."""
    dead(REPLIES.decode(record(json.dumps(body)), NOW), "SCHEMA")


def test_a_reply_keyed_otherwise_is_still_dead_lettered() -> None:
    """The key rule holds for a reply with unknown fields too."""
    letter = dead(REPLIES.decode(record(json.dumps(confirmed(x=1)), key="ORD-2"), NOW), "SCHEMA")

    assert "is not the order_id" in letter.error


def test_unknown_field_labels_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Long or odd names, and names beyond the budget of distinct ones, share the label `other`."""
    monkeypatch.setattr(metrics, "_field_labels", set())
    monkeypatch.setattr(metrics, "MAX_FIELD_LABELS", 2)
    names = ["x" * 65, "tab\there", "", "first", "second", "third", "first"]
    labels = ["other", "first", "second", "third"]
    before = [counter("orders_reply_unknown_fields_total", type="failed", field=f) for f in labels]

    metrics.count_unknown_reply_fields("failed", names)

    after = [counter("orders_reply_unknown_fields_total", type="failed", field=f) for f in labels]
    assert [a - b for a, b in zip(after, before, strict=True)] == [4, 2, 1, 0]


# --- commands: strict, but answered when the envelope is readable ------------------------------------------


def test_an_invalid_command_with_a_readable_envelope_is_answered_with_its_field_errors() -> None:
    """A known type, valid ids and the right key: INVALID_COMMAND with locations and messages, no values."""
    body = prebooking(item={"service_date": 20261224, "passengers": "Ada Lovelace"}, priority="Grace Hopper")

    rejected = COMMANDS.decode(record(json.dumps(body)), NOW)

    assert isinstance(rejected, CommandRejected)
    assert (rejected.code, rejected.command_id, rejected.client_id, rejected.order_id) == (
        RejectionCode.INVALID_COMMAND,
        "cmd-1",
        "acme",
        "ORD-1",
    )
    assert rejected.command_type == "create_prebooking"
    assert [(e.loc, e.message) for e in rejected.errors or []] == [
        (
            ["items", 0, "service_date"],
            "Datetimes provided to dates should have zero time - e.g. be exact dates",
        ),
        (["items", 0, "passengers"], "Input should be a valid list"),
        (["priority"], "Extra inputs are not permitted"),
    ]
    published = rejected.model_dump_json()
    assert "Ada" not in published and "Grace" not in published and "20261224" not in published


def test_an_invalid_commands_event_id_is_stable_and_tells_payloads_apart() -> None:
    """Read again, the same record gets the same event_id; another invalid payload under the same command_id
    gets another one."""
    first = json.dumps(prebooking(item={"passengers": "x"}))
    other = json.dumps(prebooking(item={"passengers": "y"}))

    once, again, changed = (COMMANDS.decode(record(text), NOW) for text in (first, first, other))

    assert isinstance(once, CommandRejected) and isinstance(again, CommandRejected)
    assert isinstance(changed, CommandRejected)
    assert once.event_id == again.event_id != changed.event_id


def test_an_invalid_commands_errors_are_bounded() -> None:
    """Sender-chosen field names are cut short, and only the first problems are listed."""
    body = prebooking(**{f"{'x' * 500}{n}": n for n in range(30)})

    rejected = COMMANDS.decode(record(json.dumps(body)), NOW)

    assert isinstance(rejected, CommandRejected) and rejected.errors is not None
    assert len(rejected.errors) == 10
    assert all(len(str(part)) <= 128 for error in rejected.errors for part in error.loc)


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (prebooking(items=[], command_id="cmd 1"), "ORD-1"),
        (prebooking(items=[], client_id=None), "ORD-1"),
        ({k: v for k, v in prebooking(items=[]).items() if k != "order_id"}, "ORD-1"),
        (prebooking(items=[], type="teleport_passenger"), "ORD-1"),
        (prebooking(items=[]), "ORD-2"),
        (prebooking(items=[]), None),
        (["create_prebooking"], "ORD-1"),
    ],
    ids=["bad command_id", "no client_id", "no order_id", "unknown type", "other key", "no key", "a list"],
)
def test_an_invalid_command_with_an_unreadable_envelope_is_dead_lettered(
    body: object, key: str | None
) -> None:
    """Without a sender, a command and an order to answer about, only the dead-letter topic is left."""
    dead(COMMANDS.decode(record(json.dumps(body), key=key), NOW), "SCHEMA")


def test_a_valid_command_keyed_otherwise_is_dead_lettered() -> None:
    """The key rule is unchanged for valid commands."""
    letter = dead(COMMANDS.decode(record(json.dumps(prebooking()), key="ORD-2"), NOW), "SCHEMA")

    assert letter.error == "message key 'ORD-2' is not the order_id"


@pytest.mark.parametrize(
    ("reservation_id", "order_id", "client_id"),
    [
        ("client-a/ORD-1/ITEM-1", "ORD-1", "client-a"),
        ("client-b/ORD-1/ITEM-1", "ORD-1", "client-b"),
        ("client-a/ORD-2/ITEM-1", "ORD-1", ""),  # names another order than the reply's
        ("ORD-1/ITEM-1", "ORD-1", ""),  # the v1.0 form: names no client's order
        ("client-a/ORD-1", "ORD-1", ""),
        ("/ORD-1/ITEM-1", "ORD-1", ""),
    ],
)
def test_a_reply_finds_its_client_through_the_reservation_id(
    reservation_id: str, order_id: str, client_id: str
) -> None:
    """The client comes from the reservation id, and only when it names the reply's order; else no order."""
    assert reservation_client(reservation_id, order_id) == client_id
