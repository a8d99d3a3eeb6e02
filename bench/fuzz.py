"""Hostile input for the order service from a seeded `random.Random`, each with the outcome it must get.

Every message is built from a valid contract message and then broken in one way (its category), so the
contract alone says what the service must do with it: dead-letter it with a given `error_type`, reject it
with a given `code` (`INVALID_COMMAND` for a command that breaks the schema but whose envelope is readable),
or record a given anomaly (a reply with fields the contract does not name is read without them, so one for
an order no one created is an `UNKNOWN_ORDER`). Each message also says how to find that outcome again:
dead letters by the record's coordinates (known once the broker acknowledged it), rejections by
`client_id/command_id`, anomalies by the reply's `reply_id`.

The generator checks its own work against the contract (`contracts` adapters): a message meant to be
invalid that validates, or one meant to be valid that does not, is a bug here, not in the service.
"""

import functools
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from contracts import limits
from contracts.base import Passenger
from contracts.commands import (
    CancelOrder,
    CreatePrebooking,
    OrderCommand,
    PrebookingItem,
    RecordWalkIn,
    RedeemOrder,
    order_command_adapter,
)
from contracts.resources import ReservationConfirmed, ReservationFailed, resource_reply_adapter
from contracts.statuses import ProductType, RejectionCode
from service.consumers.inbound import UnreadableJson, parse_json
from testkit.factories import SERVICE_DATE

Topic = Literal["commands", "replies"]
ENVELOPE = ("type", "command_id", "client_id", "order_id")
"""What a command must get right to be answered when the rest of it is wrong."""
OutcomeKind = Literal["dead_letter", "rejection", "anomaly"]


@dataclass(frozen=True)
class Expected:
    """What the service must do with a hostile message, and how to recognise that it did."""

    kind: OutcomeKind
    detail: str
    """dead_letter: its `error_type`; rejection: its `code`; anomaly: the anomaly's name."""
    correlation: str | None = None
    """rejection: `client_id/command_id`; anomaly: the `reply_id`; dead letter: None (its coordinates)."""


@dataclass(frozen=True)
class Hostile:
    """One hostile record and the outcome it must get."""

    category: str
    topic: Topic
    key: bytes | None
    value: bytes | None
    expected: Expected
    fresh_order_id: str | None = None
    """An order that only this message names: it must never come to exist."""


@dataclass(frozen=True)
class Target:
    """A valid order that exists by now (its first status event was seen), and the command that created it."""

    created_by: CreatePrebooking | RecordWalkIn


@dataclass
class Fuzzer:
    """Builds hostile messages of every category; `ids` prefixes every id, so runs never collide."""

    rng: random.Random
    max_message_bytes: int
    ids: str
    victim: str
    intruder: str
    victim_credential: str
    _counter: int = field(default=0, init=False)

    # --- the categories ---------------------------------------------------------------------------------

    def categories(self) -> dict[str, Callable[[], Hostile]]:
        """Categories that need no existing order."""
        per_topic: dict[str, Callable[[Topic], Hostile]] = {
            "random_bytes": self.random_bytes,
            "empty_value": self.empty_value,
            "truncated_json": self.truncated_json,
            "oversized_json": self.oversized_json,
            "json_not_an_object": self.not_an_object,
            "wrong_field_type": self.wrong_field_type,
            "unknown_type": self.unknown_type,
            "unknown_field": self.unknown_field,
            "missing_field": self.missing_field,
            "duplicate_key": self.duplicate_key,
            "bad_identifier": self.bad_identifier,
            "missing_kafka_key": self.missing_kafka_key,
            "wrong_kafka_key": self.wrong_kafka_key,
        }
        topics: tuple[Topic, Topic] = ("commands", "replies")
        found: dict[str, Callable[[], Hostile]] = {
            f"{topic}.{name}": functools.partial(make, topic)
            for topic in topics
            for name, make in per_topic.items()
        }
        found["commands.other_clients_credential"] = self.other_clients_credential
        found["replies.unknown_order"] = self.reply_for_unknown_order
        return found

    def targeted_categories(self) -> dict[str, Callable[[Target], Hostile]]:
        """Categories aimed at an order that exists (another client's, or one whose command_id is reused)."""
        return {
            "commands.other_clients_order": self.other_clients_order,
            "commands.idempotency_conflict_same_order": self.conflict_same_order,
            "commands.idempotency_conflict_other_order": self.conflict_other_order,
            "replies.unknown_reservation": self.reply_for_unknown_reservation,
        }

    def random_bytes(self, topic: Topic) -> Hostile:
        # The first byte cannot start a JSON text (nor be whitespace before one), so the whole is never JSON.
        first = bytes([self.rng.choice(b"#%&'()*+,<=>?@\\^`|~" + bytes(range(0x80, 0x100)))])
        rest = self.rng.randbytes(self.rng.randrange(0, 512))
        return self._dead(topic, "random_bytes", self._some_key(), first + rest, "NOT_JSON")

    def empty_value(self, topic: Topic) -> Hostile:
        # A tombstone (no value at all) or zero bytes.
        if self.rng.random() < 0.5:
            # A tombstone needs a key (Kafka refuses a record with neither).
            return self._dead(topic, "empty_value", self._id("ORD").encode(), None, "NOT_JSON")
        return self._dead(topic, "empty_value", self._some_key(), b"", "NOT_JSON")

    def truncated_json(self, topic: Topic) -> Hostile:
        body, order_id = self._valid_body(topic)
        raw = _dumps(body)
        # A proper prefix of a JSON object is never a JSON text: its closing brace is missing.
        cut = raw[: self.rng.randrange(1, len(raw) - 1)]
        return self._dead(topic, "truncated_json", order_id.encode(), cut, "NOT_JSON")

    def oversized_json(self, topic: Topic) -> Hostile:
        """A message the contract would accept, but larger than the limit the service enforces."""
        order_id = self._id("ORD")
        target = self.max_message_bytes + self.rng.randrange(1, self.max_message_bytes * 2)
        body: dict[str, Any]
        if topic == "commands":
            item = PrebookingItem(
                resource_id="RES-OK",
                product_type=ProductType.LOUNGE,
                service_date=SERVICE_DATE,
                passengers=[
                    Passenger(passenger_id=f"PAX-{n}", name=self._text(limits.MAX_NAME_LENGTH))
                    for n in range(limits.MAX_PASSENGERS_PER_ITEM)
                ],
            )
            # As many items as the contract allows of this size (its services per order bound them).
            most = limits.MAX_SERVICES_PER_ORDER // limits.MAX_PASSENGERS_PER_ITEM
            count = min(most, target // len(item.model_dump_json()) + 1)
            items = [item.model_copy(update={"order_item_id": f"I{n}"}) for n in range(count)]
            body = CreatePrebooking(
                command_id=self._id("cmd"), client_id=self.victim, order_id=order_id, items=items
            ).model_dump(mode="json")
        else:
            # `reservation_id` has no length limit in the contract, so one can be as large as a sender likes.
            body = ReservationConfirmed(
                reply_id=self._id("reply"), order_id=order_id, reservation_id=self._text(target)
            ).model_dump(mode="json")
        raw = _dumps(body)
        if len(raw) <= self.max_message_bytes:
            # A limit above what a valid command can reach: pad it (still refused for its size first).
            body["padding"] = "x" * (target - len(raw))
            raw = _dumps(body)
        assert len(raw) > self.max_message_bytes, "oversized message is not over the limit"
        return self._dead(topic, "oversized_json", order_id.encode(), raw, "TOO_LARGE", order_id)

    def not_an_object(self, topic: Topic) -> Hostile:
        value = self.rng.choice([[], [1, 2], "create_prebooking", 42, -1.5, True, None, [{"type": "x"}]])
        return self._dead(topic, "json_not_an_object", self._some_key(), _dumps(value), "SCHEMA")

    def wrong_field_type(self, topic: Topic) -> Hostile:
        body, order_id = self._valid_body(topic)
        name = self.rng.choice(
            [k for k in body if k not in ("type", "reason", "initiated_by", "booking_reference")]
        )
        # No value that pydantic's lax mode would coerce into the field's type (strings stay strings, etc.).
        body[name] = self.rng.choice([42, 3.5, True, None, {"nested": "object"}, ["a", "list"]])
        if isinstance(body[name], list) and name in ("items", "passengers"):
            body[name] = 7
        if topic == "commands" and name not in ENVELOPE:
            return self._invalid("wrong_field_type", body, order_id)
        return self._dead(topic, "wrong_field_type", order_id.encode(), _dumps(body), "SCHEMA")

    def unknown_type(self, topic: Topic) -> Hostile:
        body, order_id = self._valid_body(topic)
        body["type"] = self.rng.choice(
            ["delete_order", "CREATE_PREBOOKING", "", "confirmed ", "refund", "x" * 300]
        )
        return self._dead(topic, "unknown_type", order_id.encode(), _dumps(body), "SCHEMA")

    def unknown_field(self, topic: Topic) -> Hostile:
        """Commands refuse a field the contract does not name; replies are read without it."""
        body, order_id = self._valid_body(topic)
        body[self.rng.choice(["priority", "is_admin", "__proto__", "client", "orderId", "debug"])] = "yes"
        if topic == "commands":
            return self._invalid("unknown_field", body, order_id)
        raw = _dumps(body)
        self._must_validate(topic, raw)
        expected = Expected("anomaly", "UNKNOWN_ORDER", body["reply_id"])
        return Hostile("replies.unknown_field", topic, order_id.encode(), raw, expected, order_id)

    def missing_field(self, topic: Topic) -> Hostile:
        body, order_id = self._valid_body(topic)
        optional = ("reason", "initiated_by", "order_item_ids", "service_ids", "booking_reference")
        required = [k for k in body if k not in optional]
        missing = self.rng.choice(required)
        del body[missing]
        if topic == "commands" and missing not in ENVELOPE:
            return self._invalid("missing_field", body, order_id)
        return self._dead(topic, "missing_field", order_id.encode(), _dumps(body), "SCHEMA")

    def duplicate_key(self, topic: Topic) -> Hostile:
        """A key repeated in one object, at any depth, with the same value or another: refused."""
        body, order_id = self._valid_body(topic)
        objects = list(_objects(body))
        target = self.rng.choice(objects)
        key = self.rng.choice(list(target))
        marker = "__repeated__"
        target[marker] = self.rng.choice([target[key], self._text(8), None])
        raw = _dumps(body).replace(json.dumps(marker).encode(), json.dumps(key).encode())
        return self._dead(topic, "duplicate_key", order_id.encode(), raw, "SCHEMA")

    def bad_identifier(self, topic: Topic) -> Hostile:
        body, order_id = self._valid_body(topic)
        field_name = self.rng.choice(["order_id", "command_id" if topic == "commands" else "reply_id"])
        # Braces would break the Redis hash tags, spaces and newlines the logs; too long, empty, leading dash.
        bad = self.rng.choice(["ORD {x}", "a b", "-lead", "", "x" * 129, "ORD\n1", "ÖRD-1", "../../etc"])
        body[field_name] = bad
        key = bad.encode() if field_name == "order_id" else order_id.encode()
        return self._dead(topic, "bad_identifier", key, _dumps(body), "SCHEMA")

    def missing_kafka_key(self, topic: Topic) -> Hostile:
        """A valid message without a key: it would land on an arbitrary partition, out of its order's line."""
        body, order_id = self._valid_body(topic)
        raw = _dumps(body)
        self._must_validate(topic, raw)
        return self._dead(topic, "missing_kafka_key", None, raw, "SCHEMA", order_id)

    def wrong_kafka_key(self, topic: Topic) -> Hostile:
        body, order_id = self._valid_body(topic)
        raw = _dumps(body)
        self._must_validate(topic, raw)
        key = self.rng.choice([self._id("ORD"), order_id.lower() + "x", order_id + " ", "\u00e9"]).encode()
        return self._dead(topic, "wrong_kafka_key", key, raw, "SCHEMA", order_id)

    def other_clients_credential(self) -> Hostile:
        """The intruder presents the victim's credential: balances are per client, so it is unknown."""
        command = RecordWalkIn(
            command_id=self._id("cmd"),
            client_id=self.intruder,
            order_id=self._id("WALK"),
            resource_id="LOUNGE-1",
            product_type=ProductType.LOUNGE,
            credential=self.victim_credential,
            passengers=[Passenger(passenger_id="PAX-1", name=self._text(12))],
        )
        return self._rejected("other_clients_credential", command, RejectionCode.UNKNOWN_CREDENTIAL, True)

    def reply_for_unknown_order(self) -> Hostile:
        order_id = self._id("ORD")
        reply = self._reply(order_id, f"{self.victim}/{order_id}/ITEM-1")
        return self._stray("unknown_order", reply, "UNKNOWN_ORDER", order_id)

    def other_clients_order(self, target: Target) -> Hostile:
        """The intruder cancels or redeems the victim's order: it must look like no order at all."""
        order_id = target.created_by.order_id
        command: OrderCommand
        if self.rng.random() < 0.5:
            initiated_by = self.rng.choice(["CLIENT", "RESOURCE_STAFF"])
            command = CancelOrder(
                command_id=self._id("cmd"),
                client_id=self.intruder,
                order_id=order_id,
                initiated_by=initiated_by,
            )
        else:
            command = RedeemOrder(command_id=self._id("cmd"), client_id=self.intruder, order_id=order_id)
        return self._rejected("other_clients_order", command, RejectionCode.ORDER_NOT_FOUND, False)

    def conflict_same_order(self, target: Target) -> Hostile:
        """The victim's command_id again, for the same order, with other content."""
        original = target.created_by
        passengers = [Passenger(passenger_id="PAX-9", name=self._text(10))]
        changed: CreatePrebooking | RecordWalkIn
        if isinstance(original, CreatePrebooking):
            items = [original.items[0].model_copy(update={"passengers": passengers})]
            changed = original.model_copy(update={"items": items})
        else:
            changed = original.model_copy(update={"passengers": passengers})
        return self._rejected(
            "idempotency_conflict_same_order", changed, RejectionCode.IDEMPOTENCY_CONFLICT, False
        )

    def conflict_other_order(self, target: Target) -> Hostile:
        """The victim's command_id again, for a new order: the first command stands, this one is refused."""
        changed = target.created_by.model_copy(update={"order_id": self._id("ORD")})
        return self._rejected(
            "idempotency_conflict_other_order", changed, RejectionCode.IDEMPOTENCY_CONFLICT, True
        )

    def reply_for_unknown_reservation(self, target: Target) -> Hostile:
        order_id = target.created_by.order_id
        reservation_id = f"{target.created_by.client_id}/{order_id}/{self._id('NO-SUCH-ITEM')}"
        reply = self._reply(order_id, reservation_id)
        return self._stray("unknown_reservation", reply, "UNKNOWN_RESERVATION", None)

    # --- building blocks --------------------------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}-{self.ids}-{self._counter}"

    def _text(self, length: int) -> str:
        return "".join(self.rng.choices("abcdefghijklmnopqrstuvwxyz ", k=length)).strip() or "x"

    def _some_key(self) -> bytes | None:
        return self.rng.choice([None, self._id("ORD").encode(), self.rng.randbytes(8)])

    def _valid_command(self, client_id: str) -> CreatePrebooking | RecordWalkIn:
        passengers = [
            Passenger(passenger_id=f"PAX-{n}", name=self._text(16))
            for n in range(1, self.rng.randint(1, 3) + 1)
        ]
        if self.rng.random() < 0.7:
            return CreatePrebooking(
                command_id=self._id("cmd"),
                client_id=client_id,
                order_id=self._id("ORD"),
                items=[
                    PrebookingItem(
                        resource_id="RES-OK",
                        product_type=ProductType.FAST_TRACK,
                        service_date=SERVICE_DATE,
                        passengers=passengers,
                    )
                ],
            )
        return RecordWalkIn(
            command_id=self._id("cmd"),
            client_id=client_id,
            order_id=self._id("WALK"),
            resource_id="LOUNGE-1",
            product_type=ProductType.LOUNGE,
            credential=self.victim_credential,
            passengers=passengers,
        )

    def _reply(self, order_id: str, reservation_id: str) -> ReservationConfirmed | ReservationFailed:
        if self.rng.random() < 0.5:
            return ReservationConfirmed(
                reply_id=self._id("reply"), order_id=order_id, reservation_id=reservation_id
            )
        return ReservationFailed(
            reply_id=self._id("reply"),
            order_id=order_id,
            reservation_id=reservation_id,
            reason_code="SOLD_OUT",
            reason="fuzzed",
        )

    def _valid_body(self, topic: Topic) -> tuple[dict[str, Any], str]:
        """A valid message (as a dict to break) about an order that does not exist, and that order's id.

        Commands come from the victim, so that a command the service wrongly accepted would show up as an
        order of a real client; replies name an order no one created.
        """
        message: CreatePrebooking | RecordWalkIn | ReservationConfirmed | ReservationFailed
        if topic == "commands":
            message = self._valid_command(self.victim)
        else:
            order_id = self._id("ORD")
            message = self._reply(order_id, f"{self.victim}/{order_id}/ITEM-1")
        return message.model_dump(mode="json"), message.order_id

    def _dead(
        self,
        topic: Topic,
        category: str,
        key: bytes | None,
        value: bytes | None,
        error_type: str,
        fresh_order_id: str | None = None,
    ) -> Hostile:
        if category not in ("missing_kafka_key", "wrong_kafka_key", "oversized_json"):
            self._must_not_validate(topic, value or b"")
        return Hostile(
            f"{topic}.{category}", topic, key, value, Expected("dead_letter", error_type), fresh_order_id
        )

    def _invalid(self, category: str, body: dict[str, Any], order_id: str) -> Hostile:
        """A command that breaks the schema outside its envelope: answered with INVALID_COMMAND, no order."""
        raw = _dumps(body)
        self._must_not_validate("commands", raw)
        code = RejectionCode.INVALID_COMMAND.value
        expected = Expected("rejection", code, f"{body['client_id']}/{body['command_id']}")
        return Hostile(f"commands.{category}", "commands", order_id.encode(), raw, expected, order_id)

    def _rejected(self, category: str, command: OrderCommand, code: RejectionCode, fresh: bool) -> Hostile:
        raw = command.model_dump_json().encode()
        self._must_validate("commands", raw)
        expected = Expected("rejection", code.value, f"{command.client_id}/{command.command_id}")
        fresh_order_id = command.order_id if fresh else None
        return Hostile(
            f"commands.{category}", "commands", command.order_id.encode(), raw, expected, fresh_order_id
        )

    def _stray(
        self, category: str, reply: ReservationConfirmed | ReservationFailed, anomaly: str, fresh: str | None
    ) -> Hostile:
        raw = reply.model_dump_json().encode()
        self._must_validate("replies", raw)
        expected = Expected("anomaly", anomaly, reply.reply_id)
        return Hostile(f"replies.{category}", "replies", reply.order_id.encode(), raw, expected, fresh)

    @staticmethod
    def _validates(topic: Topic, raw: bytes) -> bool:
        adapter = order_command_adapter if topic == "commands" else resource_reply_adapter
        try:
            # The contract refuses a repeated key, which pydantic alone would resolve to the last value.
            adapter.validate_python(parse_json(raw))
        except (UnreadableJson, ValidationError):
            return False
        return True

    def _must_validate(self, topic: Topic, raw: bytes) -> None:
        assert self._validates(topic, raw), f"generator bug: meant to be valid: {raw[:200]!r}"

    def _must_not_validate(self, topic: Topic, raw: bytes) -> None:
        assert not self._validates(topic, raw), f"generator bug: meant to be invalid: {raw[:200]!r}"


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _objects(value: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in `value`, itself included."""
    if isinstance(value, dict):
        yield value
        for inner in value.values():
            yield from _objects(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _objects(inner)
