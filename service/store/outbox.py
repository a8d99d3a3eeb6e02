"""Outbox entries: messages decided together with a state change and published after it is stored."""

from enum import StrEnum

import msgspec

from service.domain.local_effects import Effect


class Destination(StrEnum):
    """Which topic an entry goes to; the topic names themselves are settings, resolved at publication."""

    STATUS_CHANGED = "status"
    RESOURCE_REQUESTS = "request"
    COMMAND_REJECTED = "rejected"
    DEAD_LETTER = "dead"
    LOCAL_EFFECT = "effect"
    """Not a topic: an effect on other Redis state (a timer, a refund), carried out before acknowledgement."""


class OutboxEntry(msgspec.Struct, frozen=True):
    """One message to publish, keyed by its order id (shared by the orders of any clients using that id).

    A msgspec struct, as the other values built per order on the hot path: about a tenth of a frozen
    dataclass's construction cost, and several are built per order."""

    destination: Destination
    key: str
    value: bytes
    traceparent: str | None = None
    """The W3C trace context of the input that caused it (tracing on): its message continues that trace."""
    client_id: str = ""
    """The client of the order or command (not stored: the outbox is per order, which names it); lets the
    publisher pick a client's topics without parsing `value` again. '' when none is known (a dead letter)."""
    effect: Effect | None = None
    """A local effect decided in this process, as it was before `value` was serialised: carried out without
    parsing `value` back. None for entries read from an outbox (a crashed run's), which are parsed."""

    def encode(self) -> bytes:
        """`destination\\nkey\\nvalue`: keys never hold a newline (see `contracts.base.Identifier`); a
        traceparent follows the key after a space, which no key holds either (and no script reads there)."""
        key = self.key if self.traceparent is None else f"{self.key} {self.traceparent}"
        return b"%s\n%s\n%s" % (self.destination.encode(), key.encode(), self.value)

    @classmethod
    def decode(cls, raw: bytes, client_id: str = "") -> "OutboxEntry":
        """The inverse of `encode`, for an entry of `client_id`'s order."""
        destination, key, value = raw.split(b"\n", 2)
        traceparent = None
        if b" " in key:
            key, raw_traceparent = key.split(b" ", 1)
            traceparent = raw_traceparent.decode()
        return cls(
            Destination(destination.decode()),
            key.decode(),
            value,
            traceparent=traceparent,
            client_id=client_id,
        )


class PendingEntry(msgspec.Struct, frozen=True):
    """An entry stored in an order's outbox under `number`, waiting for the broker's acknowledgement."""

    client_id: str
    order_id: str
    number: bytes
    entry: OutboxEntry
