"""Every Redis key the service uses. Keys of one order share the hash tag `{<client_id>/<order_id>}`.

An order's identity is the pair (client_id, order_id): two clients may use the same order id, and each gets
an order of its own. One atomic step only ever touches one order's keys, so every Lua script runs unchanged
on Redis Cluster.

Composite keys join a client id and a client-chosen id with `/` (`order:{<client>/<order_id>}`,
`entitlement:{<client>/<credential>}`, `command:{<client>/<command_id>}`). They are unambiguous because
neither part may contain `/` (nor a brace, which would move the hash tag): `contracts.base.ClientIdentifier`
refuses both at every door. We assert that here rather than escape the parts: an escaping would rename every
stored balance and idempotency claim (a migration during a rolling upgrade), while the assertion keeps
today's keys for every valid id and turns a caller that forgot to validate into a loud `ValueError` instead
of a silent collision between two clients.
"""

_FORBIDDEN_IN_PARTS = frozenset("/{}")


def _part(value: str) -> str:
    """`value` if it can be one part of a composite key: not empty, no `/` and no braces."""
    if not value or not _FORBIDDEN_IN_PARTS.isdisjoint(value):
        raise ValueError(f"not a valid key part (empty, or contains / {{ }}): {value!r}")
    return value


def order_ref(client_id: str, order_id: str) -> str:
    """`<client_id>/<order_id>`: one order among all clients' (unambiguous: neither id holds a `/`)."""
    return f"{client_id}/{order_id}"


def order_key(client_id: str, order_id: str) -> str:
    """Hash: `state` (the order as JSON), `version`, `outbox_seq`."""
    return f"order:{{{order_ref(client_id, order_id)}}}"


def inputs_key(client_id: str, order_id: str) -> str:
    """Hash: id of every command and reply applied to the order → fingerprint of its payload."""
    return f"order:{{{order_ref(client_id, order_id)}}}:inputs"


def outbox_key(client_id: str, order_id: str) -> str:
    """Hash: zero-padded entry number → a message still to be published for this order."""
    return f"order:{{{order_ref(client_id, order_id)}}}:outbox"


def history_key(client_id: str, order_id: str) -> str:
    """List: the order's status events as published, the one of `sequence` n at index n - 1."""
    return f"order:{{{order_ref(client_id, order_id)}}}:events"


def order_keys(client_id: str, order_id: str) -> list[str]:
    """The keys of one order, in the order the Lua scripts expect them."""
    return [
        order_key(client_id, order_id),
        inputs_key(client_id, order_id),
        outbox_key(client_id, order_id),
        history_key(client_id, order_id),
    ]


def entitlement_key(client_id: str, credential: str) -> str:
    """Hash: `balance`, kept as long as the credential is. Hashes written before consumption records had keys
    of their own also hold `c:<input_id>` (units a walk-in consumed), `r:<input_id>` (refunded marker) and,
    once `consume_entitlement.lua` found those, `legacy_until` (epoch s), after which it drops them."""
    return f"entitlement:{{{_part(client_id)}/{_part(credential)}}}"


def entitlement_consumption_key(client_id: str, credential: str, input_id: str) -> str:
    """String: the units one walk-in input took from the credential's balance, `refunded` once given back.
    It expires `EntitlementStore`'s record lifetime after the walk-in; it shares the balance's hash tag, so
    that consuming and refunding stay single-slot atomic steps on any topology."""
    return f"{entitlement_key(client_id, credential)}:consumed:{input_id}"


CONFIRMATION_TIMERS = "timers:{confirmation}"
"""Sorted set: `<client_id>/<order_id>` (`order_ref`) scored by the epoch milliseconds at which its
confirmation times out."""

NO_SHOW_TIMERS = "timers:{no_show}"
"""Sorted set: `<client_id>/<order_id>/<epoch ms>` of confirmed prebookings, scored by the epoch
milliseconds at which their unused services become NOT_CLAIMED (last service date plus grace: that same
number); removed once fired. A change that moves the date adds the new deadline: at most
`MAX_CHANGES_PER_ORDER` + 1 per order. (Members set before this layout are `<client_id>/<order_id>`.)"""

CHANGE_TIMERS = "timers:{change}"
"""Sorted set: `<client_id>/<order_id>/<epoch ms>` of orders whose change awaits its resource, scored by the
epoch milliseconds of the change's deadline (that same number); removed once fired. At most
`MAX_CHANGES_PER_ORDER` per order, each living until its deadline passes plus a watcher round."""

WAITLIST_TIMERS = "timers:{waitlist}"
"""Sorted set: `<client_id>/<order_id>` (`order_ref`) of Pending orders with a waitlisted item, scored by
the epoch milliseconds of their waitlist deadline."""

ANOMALIES = "anomalies:{log}"
"""Stream of replies and inputs that changed nothing for a reason worth a look (capped)."""


def command_claim_key(client_id: str, command_id: str) -> str:
    """String: fingerprint of the first payload seen under a client's command_id, across all orders."""
    return f"command:{{{_part(client_id)}/{_part(command_id)}}}"


def command_outcome_key(client_id: str, command_id: str) -> str:
    """String: the command's outcome as JSON (`service.domain.command_outcomes.CommandOutcome`). It shares
    the claim's hash tag, so that recording it can check the claim atomically, and expires with the claim."""
    return f"{command_claim_key(client_id, command_id)}:outcome"


# Webhook relay. Every key of one endpoint shares the hash tag `{<endpoint_id>}`, so that queueing, settling
# an attempt and the circuit breaker are single-slot atomic steps.

WEBHOOK_ENDPOINTS = "webhooks:{all}"
"""Set of every endpoint id (the delivery workers' periodic sweep walks it; their rounds do not)."""

# The due index: which endpoints may have something due, and from when, so that a round of the delivery loop
# costs what is due, not what is registered. It lives in a slot of its own (`{due}`), so it cannot change in
# the same atomic step as an endpoint's queues: every write to an endpoint's `due` lowers the endpoint's entry
# here *after* its atomic step, and raising an entry is conditional on no such write since it was read (the
# marks). A writer that crashes between the two steps leaves an entry too late or missing; the periodic sweep
# (`ORDERS_RELAY_SWEEP_SECONDS`) restores it. See `service.store.webhook_due_index`.

WEBHOOK_DUE_INDEX = "webhooks:{due}"
"""Sorted set: endpoint id → no later than when its earliest queue is due (epoch ms); only endpoints with
queued deliveries (an entry may outlive its last queue until a worker next reads it)."""

WEBHOOK_DUE_MARKS = "webhooks:{due}:marks"
"""Hash: endpoint id → the number of the last write that lowered its entry (from `WEBHOOK_DUE_WRITES`); one
field per entry of the index, removed with it."""

WEBHOOK_DUE_WRITES = "webhooks:{due}:writes"
"""String: a counter that numbers the writes to the due index (never reused, so a mark is never mistaken)."""


def client_webhooks_key(client_id: str) -> str:
    """Set: the endpoint ids a client registered, at most `ORDERS_MAX_WEBHOOK_ENDPOINTS_PER_CLIENT`."""
    return f"client:{{{client_id}}}:webhooks"


def webhook_endpoint_key(endpoint_id: str) -> str:
    """Hash: `config` (the endpoint as JSON, with its signing secrets) and `version` (incremented with every
    change of `config`: the relay instances cache configurations and compare versions at each claim and each
    attempt); the circuit breaker's `failures`, `failing_since` and `paused_until` (epoch ms), written by the
    settle script."""
    return f"webhook:{{{endpoint_id}}}"


def webhook_pending_key(endpoint_id: str, queue_id: str) -> str:
    """Sorted set: the ids of a queue's events still to deliver to the endpoint, scored by sequence.

    A queue is an order's status events (`queue_id` is the order id), or one command rejection (see
    `service.store.webhook_deliveries.rejection_queue`).
    """
    return f"webhook:{{{endpoint_id}}}:pending:{queue_id}"


def webhook_bodies_key(endpoint_id: str) -> str:
    """Hash: event id → the event (JSON) of every queued delivery of the endpoint."""
    return f"webhook:{{{endpoint_id}}}:bodies"


def webhook_due_key(endpoint_id: str) -> str:
    """Sorted set: queue id → when its next delivery is due, or until when it is leased (epoch ms).

    It lists every non-empty pending queue, so it indexes the endpoint's queues: whatever queues an event
    (`enqueue_delivery.lua`, a replay's transaction) adds its queue here in the same atomic step, and only
    `settle_delivery.lua` removes a queue, in the step that takes its last event.
    """
    return f"webhook:{{{endpoint_id}}}:due"


def webhook_done_key(endpoint_id: str) -> str:
    """Hash: order id → the last sequence delivered or given up (what makes queuing idempotent). Its fields
    are trimmed with `webhook_done_at_key` (Redis 6.2 cannot expire hash fields)."""
    return f"webhook:{{{endpoint_id}}}:done"


def webhook_done_at_key(endpoint_id: str) -> str:
    """Sorted set: order id → when its last event was settled (epoch ms). The settle script drops an order
    from here and from `done` once that is longer ago than the order retention. Safe: `done` only stops an
    event from being queued again, and an event is queued again only when its record is read again, which
    happens while the record is in its topic (the topic retention is at most the idempotency retention, and
    that at most the order retention), so after its settle. A later event of the order has a higher sequence
    and is queued with or without the field."""
    return f"webhook:{{{endpoint_id}}}:done_at"


def webhook_settled_key(endpoint_id: str) -> str:
    """Sorted set: the queue id of each command rejection delivered or given up → when (epoch ms).

    A rejection is a queue of its own (it has no sequence to keep in `done`); this makes queuing it
    idempotent, and is trimmed to the idempotency retention by the settle script, which bounds it.
    """
    return f"webhook:{{{endpoint_id}}}:settled"


def webhook_tries_key(endpoint_id: str) -> str:
    """Hash: event id → the attempts made so far on a queued delivery (JSON list)."""
    return f"webhook:{{{endpoint_id}}}:tries"


def webhook_dead_key(endpoint_id: str) -> str:
    """Hash: event id → a delivery given up on: `{"event", "attempts"}` (JSON), until replayed."""
    return f"webhook:{{{endpoint_id}}}:dead"


def webhook_attempts_key(endpoint_id: str) -> str:
    """Stream: the endpoint's attempt log, one entry per attempt (capped)."""
    return f"webhook:{{{endpoint_id}}}:attempts"


def webhook_fixed_keys(endpoint_id: str) -> list[str]:
    """Every key of an endpoint but its per-order pending queues."""
    return [
        webhook_endpoint_key(endpoint_id),
        webhook_bodies_key(endpoint_id),
        webhook_due_key(endpoint_id),
        webhook_done_key(endpoint_id),
        webhook_done_at_key(endpoint_id),
        webhook_settled_key(endpoint_id),
        webhook_tries_key(endpoint_id),
        webhook_dead_key(endpoint_id),
        webhook_attempts_key(endpoint_id),
    ]


def api_key_key(key_id: str) -> str:
    """Hash: `client_id`, `secret_sha256`, `created_at`, `revoked_at` of one API key (the secret itself is
    never stored)."""
    return f"apikey:{{{key_id}}}"


def api_key_bucket_key(key_id: str) -> str:
    """Hash: `tokens` and `at` (epoch ms), the request-rate bucket of one API key; it expires once it would
    be full again (a few seconds after the key's last request)."""
    return f"apikey:{{{key_id}}}:rate"


def client_api_keys_key(client_id: str) -> str:
    """Set: the ids of a client's unrevoked keys, at most `ORDERS_MAX_API_KEYS_PER_CLIENT`."""
    return f"client:{{{client_id}}}:apikeys"


def client_orders_key(client_id: str) -> str:
    """Sorted set: a client's order ids by creation time (epoch ms), for listing and paging."""
    return f"client:{{{client_id}}}:orders"


def portal_link_key(token_digest: str) -> str:
    """String: the client id a portal link opens a session for, under the SHA-256 of the link's token;
    deleted as it is read (GETDEL), so a link opens one session at most. Expires with the link."""
    return f"portal:link:{token_digest}"


def portal_session_key(session_digest: str) -> str:
    """String: a portal session as JSON (`client_id` or `operator`, `csrf`), under the SHA-256 of the
    session cookie's value. Expires with the session."""
    return f"portal:session:{session_digest}"


PORTAL_OPERATOR_FAILURES = "portal:operator-failures"
"""String: failed operator logins of the portal in the current minute (INCR; expires 60 s after the first)."""
