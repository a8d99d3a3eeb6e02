"""Limits at the door: a command at each limit of contract v1.1 is accepted, one just over it refused.

Kafka parses with these models and the HTTP API builds them, so both refuse the same commands
(tests/integration/test_api_limits.py shows the API's 422 and Kafka's refusal end to end).
"""

import json
from typing import Any

import pytest
from pydantic import ValidationError

from contracts.commands import order_command_adapter
from contracts.resources import resource_reply_adapter


def _prebooking(items: int = 1, passengers: int = 1, **item: Any) -> dict[str, Any]:
    return {
        "type": "create_prebooking",
        "command_id": "cmd-1",
        "client_id": "acme",
        "order_id": "ORD-1",
        "items": [
            {
                "order_item_id": f"I{n}",
                "resource_id": "LHR-FT",
                "product_type": "FAST_TRACK",
                "service_date": "2026-12-24",
                "passengers": [{"passenger_id": f"P{p}", "name": "Ada"} for p in range(passengers)],
                **item,
            }
            for n in range(items)
        ],
    }


def _passenger(passenger_id: str = "P1", name: str = "Ada") -> dict[str, Any]:
    body = _prebooking()
    body["items"][0]["passengers"] = [{"passenger_id": passenger_id, "name": name}]
    return body


def _command(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "command_id": "cmd-1", "client_id": "acme", "order_id": "ORD-1", **fields}


def _uneven(*passengers: int) -> dict[str, Any]:
    body = _prebooking(items=len(passengers))
    for item, count in zip(body["items"], passengers, strict=True):
        item["passengers"] = [{"passenger_id": f"P{p}", "name": "Ada"} for p in range(count)]
    return body


AT_AND_JUST_OVER = {
    "items per order": (_prebooking(items=20), _prebooking(items=21)),
    "passengers per item": (_prebooking(passengers=50), _prebooking(passengers=51)),
    "services per order": (_uneven(50, 50), _uneven(50, 50, 1)),
    "services per order, spread": (_uneven(*[5] * 20), _uneven(*[5] * 19, 6)),
    "order_item_id length": (_prebooking(order_item_id="I" * 32), _prebooking(order_item_id="I" * 33)),
    "passenger_id length": (_passenger("P" * 64), _passenger("P" * 65)),
    "name length": (_passenger(name="N" * 100), _passenger(name="N" * 101)),
    "name characters": (_passenger(name="Zoë Ångström-O'Neil"), _passenger(name="Ada\u0000")),
    "order_id length": (
        _command("redeem_order", order_id="O" * 128),
        _command("redeem_order", order_id="O" * 129),
    ),
    "order_id characters": (
        _command("redeem_order", order_id="a..b:c_d-e"),
        _command("redeem_order", order_id="a/b"),
    ),
    "command_id characters": (
        _command("redeem_order", command_id="c.1"),
        _command("redeem_order", command_id="c/1"),
    ),
    "client_id characters": (
        _command("redeem_order", client_id="acme-eu-" + "x" * 56),
        _command("redeem_order", client_id="acme:eu"),
    ),
    "reason length": (_command("cancel_order", reason="r" * 500), _command("cancel_order", reason="r" * 501)),
    "reason characters": (
        _command("cancel_order", reason="a\r\nb\tc"),
        _command("cancel_order", reason="a\u0007"),
    ),
    "order_item_ids per command": (
        _command("cancel_order", order_item_ids=[f"I{n}" for n in range(20)]),
        _command("cancel_order", order_item_ids=[f"I{n}" for n in range(21)]),
    ),
    "order_item_ids characters": (
        _command("cancel_order", order_item_ids=["I" * 128]),
        _command("cancel_order", order_item_ids=["ORD/I1"]),
    ),
    "service_ids per command": (
        _command("redeem_order", service_ids=[f"S{n}" for n in range(100)]),
        _command("redeem_order", service_ids=[f"S{n}" for n in range(101)]),
    ),
    "service_ids characters": (
        _command("redeem_order", service_ids=["S" * 128]),
        _command("redeem_order", service_ids=["I1/P1"]),
    ),
    "walk-in passengers": tuple(
        _command(
            "record_walk_in",
            resource_id="LOUNGE",
            product_type="LOUNGE",
            credential="CARD-1",
            passengers=[{"passenger_id": f"P{p}", "name": "Ada"} for p in range(count)],
        )
        for count in (50, 51)
    ),
    "credential characters": tuple(
        _command(
            "record_walk_in",
            resource_id="LOUNGE/T5",  # an operator's resource id may hold `/`
            product_type="LOUNGE",
            credential=credential,
            passengers=[{"passenger_id": "P1", "name": "Ada"}],
        )
        for credential in ("CARD:4242", "CARD/4242")
    ),
}


@pytest.mark.parametrize(("at_limit", "over_limit"), AT_AND_JUST_OVER.values(), ids=AT_AND_JUST_OVER.keys())
def test_a_command_at_a_limit_is_accepted_and_one_just_over_is_refused(
    at_limit: dict[str, Any], over_limit: dict[str, Any]
) -> None:
    """Kafka's parsing (and the API, which builds the same models) accepts the limit and refuses past it."""
    order_command_adapter.validate_json(json.dumps(at_limit))
    with pytest.raises(ValidationError):
        order_command_adapter.validate_json(json.dumps(over_limit))


@pytest.mark.parametrize(
    ("reference", "accepted"),
    [("FT-7Q2K9", True), ("B" * 64, True), ("B" * 65, False), ("", False), ("FT\n1", False)],
)
def test_a_booking_reference_is_bounded_printable_text(reference: str, accepted: bool) -> None:
    """1-64 characters without control characters; outside that, the reply does not fit the contract."""
    reply = {
        "type": "confirmed",
        "reply_id": "r",
        "order_id": "o",
        "reservation_id": "o/i",
        "booking_reference": reference,
    }
    if accepted:
        assert resource_reply_adapter.validate_json(json.dumps(reply)).booking_reference == reference  # type: ignore[union-attr]
    else:
        with pytest.raises(ValidationError):
            resource_reply_adapter.validate_json(json.dumps(reply))
