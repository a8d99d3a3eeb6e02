"""Outbox entries: messages decided together with a state change and published after it is stored."""

from dataclasses import dataclass
from enum import StrEnum


class Destination(StrEnum):
    """Which topic an entry goes to; the topic names themselves are settings, resolved at publication."""

    STATUS_CHANGED = "status"
    RESOURCE_REQUESTS = "request"
    COMMAND_REJECTED = "rejected"
    DEAD_LETTER = "dead"
    LOCAL_EFFECT = "effect"
    """Not a topic: an effect on other Redis state (a timer, a refund), carried out before acknowledgement."""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One message to publish, keyed by its order id (shared by the orders of any clients using that id)."""

    destination: Destination
    key: str
    value: bytes
    traceparent: str | None = None
    """The W3C trace context of the input that caused it (tracing on): its message continues that trace."""

    def encode(self) -> bytes:
        """`destination\\nkey\\nvalue`: keys never hold a newline (see `contracts.base.Identifier`); a
        traceparent follows the key after a space, which no key holds either (and no script reads there)."""
        key = self.key if self.traceparent is None else f"{self.key} {self.traceparent}"
        return b"%s\n%s\n%s" % (self.destination.value.encode(), key.encode(), self.value)

    @classmethod
    def decode(cls, raw: bytes) -> "OutboxEntry":
        """The inverse of `encode`."""
        destination, key, value = raw.split(b"\n", 2)
        if b" " in key:
            key, traceparent = key.split(b" ", 1)
            return cls(Destination(destination.decode()), key.decode(), value, traceparent.decode())
        return cls(Destination(destination.decode()), key.decode(), value)


@dataclass(frozen=True, slots=True)
class PendingEntry:
    """An entry stored in an order's outbox under `number`, waiting for the broker's acknowledgement."""

    client_id: str
    order_id: str
    number: bytes
    entry: OutboxEntry
