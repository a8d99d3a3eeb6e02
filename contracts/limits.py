"""The limits of contract v1.1, in one place: what one order may be made of, and what follows from that.

They are chosen so that every order the service accepts can be carried by every part of the system: each
event it produces fits the webhook relay's request limit (`MAX_EVENT_BYTES` ≤ 256 KiB, the default of
`ORDERS_RELAY_MAX_REQUEST_BYTES`), the command that creates it fits the HTTP API's body limit and
`ORDERS_MAX_MESSAGE_BYTES` (`MAX_COMMAND_BYTES`), and each of its service ids,
`<order_item_id>-<passenger_id>`, is an identifier that `redeem_order.service_ids` can name
(`MAX_SERVICE_ID_LENGTH` ≤ 128). The command models enforce them, so Kafka and the HTTP API refuse the same
commands. docs/contract.md#limits has the table; tests/unit/test_limits.py builds the worst cases and checks
the derived sizes against them.
"""

MAX_IDENTIFIER_LENGTH = 128
"""Every identifier: command, client, order, resource, credential, reply ids; and ids naming services."""
MAX_ORDER_ITEM_ID_LENGTH = 32
"""`order_item_id`: short, so that a service id it begins stays an identifier."""
MAX_CLIENT_ID_LENGTH = 64
"""Characters in a `client_id`: it is also part of Kafka topic names (at most 249 characters)."""
MAX_PASSENGER_ID_LENGTH = 64
"""`passenger_id`: the other part of a service id."""
MAX_SERVICE_ID_LENGTH = MAX_ORDER_ITEM_ID_LENGTH + 1 + MAX_PASSENGER_ID_LENGTH
"""A service id, `<order_item_id>-<passenger_id>`: 97 characters at most, so always an identifier."""
MAX_NAME_LENGTH = 100
"""A passenger's name as printed, in characters (control characters are refused)."""
MAX_REASON_LENGTH = 500
"""`cancel_order.reason`, free text kept with the order and carried by its events."""
MAX_REASON_CODE_LENGTH = 64
"""A `failed` reply's `reason_code`, which becomes the Failed event's `reason`."""
MAX_BOOKING_REFERENCE_LENGTH = 64
"""A `confirmed` reply's `booking_reference`, kept with its item and carried by the item's view."""

MAX_ITEMS_PER_ORDER = 20
MAX_PASSENGERS_PER_ITEM = 50
"""Also the passengers of a walk-in, which is one item."""
MAX_SERVICES_PER_ORDER = 100
"""Passengers summed over an order's items: one service each. This one bounds the size of events."""

MAX_CHANGES_PER_ORDER = 4
"""`change_order` requests an order may hold (each adds an item to the stored order, whose view still shows
only the items the retrieve rule lets through: never more services than the order was created with)."""

MAX_ITEM_IDS_PER_COMMAND = MAX_ITEMS_PER_ORDER
"""`cancel_order.order_item_ids`: no order has more items to name."""
MAX_SERVICE_IDS_PER_COMMAND = MAX_SERVICES_PER_ORDER
"""`redeem_order.service_ids`: no order has more services to name."""

# Bytes per character in the service's JSON (UTF-8, non-ASCII characters as they are): identifiers are
# ASCII; text that refuses control characters is at most 4 bytes a character (outside the BMP; `"` and `\`
# escape to 2); a string that may hold control characters, 6 (`\u0000`).
_TEXT_BYTES_PER_CHARACTER = 4
_ANY_STRING_BYTES_PER_CHARACTER = 6
# A client's encoder may escape every non-ASCII character (Python's json.dumps does): a character outside
# the BMP is then a surrogate pair, 12 bytes.
_ESCAPED_TEXT_BYTES_PER_CHARACTER = 12

# The rest of each JSON object: field names, punctuation, dates, numbers and the longest value of each
# enum. tests/unit/test_limits.py measures the worst case and fails when a new field outgrows these.
_SERVICE_VIEW_FRAME = 120
_ITEM_VIEW_FRAME = 160
_EVENT_FRAME = 320
_PASSENGER_FRAME = 32
_ITEM_FRAME = 140
_COMMAND_FRAME = 100

_SERVICE_VIEW_BYTES = (
    _SERVICE_VIEW_FRAME
    + MAX_SERVICE_ID_LENGTH
    + MAX_PASSENGER_ID_LENGTH
    + MAX_NAME_LENGTH * _TEXT_BYTES_PER_CHARACTER
)
_ITEM_VIEW_BYTES = (
    _ITEM_VIEW_FRAME
    + MAX_ORDER_ITEM_ID_LENGTH
    + MAX_IDENTIFIER_LENGTH  # resource_id
    + MAX_BOOKING_REFERENCE_LENGTH * _TEXT_BYTES_PER_CHARACTER
)
_EVENT_REASON_BYTES = max(
    MAX_REASON_LENGTH * _TEXT_BYTES_PER_CHARACTER,
    MAX_REASON_CODE_LENGTH * _ANY_STRING_BYTES_PER_CHARACTER,  # the operator's code is not restricted
)

MAX_EVENT_BYTES = (
    _EVENT_FRAME
    + 2 * MAX_IDENTIFIER_LENGTH  # order_id, client_id
    + _EVENT_REASON_BYTES
    + MAX_ITEMS_PER_ORDER * _ITEM_VIEW_BYTES
    + MAX_SERVICES_PER_ORDER * _SERVICE_VIEW_BYTES
)
"""The largest `order_status_changed` an order inside the limits can produce, in bytes as published; a
bound on `command_rejected` too. The relay refuses to start with `ORDERS_RELAY_MAX_REQUEST_BYTES` below it."""

MAX_COMMAND_BYTES = (
    _COMMAND_FRAME
    + 3 * MAX_IDENTIFIER_LENGTH  # command_id, client_id, order_id
    + MAX_ITEMS_PER_ORDER * (_ITEM_FRAME + MAX_ORDER_ITEM_ID_LENGTH + MAX_IDENTIFIER_LENGTH)
    + MAX_SERVICES_PER_ORDER
    * (_PASSENGER_FRAME + MAX_PASSENGER_ID_LENGTH + MAX_NAME_LENGTH * _ESCAPED_TEXT_BYTES_PER_CHARACTER)
)
"""The largest command inside the limits (a `create_prebooking`) in compact JSON, even with every non-ASCII
character escaped: the HTTP API's body limit and the default `ORDERS_MAX_MESSAGE_BYTES` are above it."""

# Per-client bounds: defaults of settings an operator may change (docs/api.md#bounds).
WEBHOOK_ENDPOINTS_PER_CLIENT = 16
"""Registered webhook endpoints (`ORDERS_MAX_WEBHOOK_ENDPOINTS_PER_CLIENT`); as many as Stripe allows."""
API_KEYS_PER_CLIENT = 10
"""Unrevoked API keys (`ORDERS_MAX_API_KEYS_PER_CLIENT`): room to rotate keys with several in use."""
API_REQUESTS_PER_SECOND = 50.0
"""Sustained requests per API key (`ORDERS_API_RATE_PER_SECOND`)."""
API_REQUEST_BURST = 100
"""Requests per API key at once after a quiet spell (`ORDERS_API_RATE_BURST`)."""
ORDERS_PER_PAGE = 200
"""The most orders one page of `GET /v1/orders` holds (`limit`, default 50)."""
EVENTS_PER_PAGE = 100
"""The most events one page of `GET /v1/orders/{order_id}/events` holds (`limit`, default 100)."""
