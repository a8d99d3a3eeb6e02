"""Default Kafka topic names of contract v1 (each is overridable by a setting)."""

from typing import Final

ORDER_COMMANDS: Final = "orders.commands"
"""Clients → service: `create_prebooking`, `record_walk_in`, `cancel_order`, `redeem_order`,
`suspend_services`, `lift_suspension`, `change_order`."""

RESOURCE_REQUESTS: Final = "resources.requests"
"""Service → resource operators: `reserve`, `release`."""

RESOURCE_REPLIES: Final = "resources.replies"
"""Resource operators → service: `confirmed`, `failed`."""

ORDER_STATUS_CHANGED: Final = "orders.status-changed"
"""Service → subscribers and the webhook relay: `order_status_changed`."""

COMMAND_REJECTED: Final = "orders.command-rejected"
"""Service → clients: `command_rejected`."""

DEAD_LETTER: Final = "orders.dead-letter"
"""Service → operators: `dead_letter`, for input that could not be parsed or validated."""
