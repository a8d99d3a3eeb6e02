"""Prometheus counters for every path a message can take, so tests and operators can account for each."""

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

INPUTS_APPLIED = Counter("orders_inputs_applied_total", "Commands and replies applied to orders.", ["kind"])
INPUTS_DUPLICATE = Counter(
    "orders_inputs_duplicate_total", "Commands and replies seen before (no effect).", ["kind"]
)
DEAD_LETTERS = Counter(
    "orders_dead_letters_total", "Messages sent to the dead-letter topic.", ["topic", "error_type"]
)
REJECTIONS = Counter("orders_commands_rejected_total", "Valid commands that were not carried out.", ["code"])
REPLY_ANOMALIES = Counter(
    "orders_reply_anomalies_total",
    "Replies that changed no status (stray, late, contradictory).",
    ["anomaly"],
)
REPLY_UNKNOWN_FIELDS = Counter(
    "orders_reply_unknown_fields_total",
    "Top-level fields of replies that the contract does not name, ignored; by reply type and field name.",
    ["type", "field"],
)
MAX_FIELD_LABELS = 100
"""Distinct field names a process counts under their own name; later ones are counted as `other`."""
MAX_FIELD_LABEL_LENGTH = 64
_field_labels: set[str] = set()
MESSAGES_PUBLISHED = Counter(
    "orders_messages_published_total", "Messages published from the outbox.", ["destination"]
)
TRANSITION_CONFLICTS = Counter(
    "orders_transition_conflicts_total", "Transitions retried because the order changed concurrently."
)
BATCH_FAILURES = Counter(
    "orders_batch_failures_total",
    "Batches, and rounds of the deadline watcher, that failed and will be tried again.",
    ["source"],
)

WEBHOOK_ATTEMPTS = Counter("orders_webhook_attempts_total", "Webhook delivery attempts.", ["outcome"])
WEBHOOK_DELIVERED = Counter("orders_webhook_deliveries_total", "Webhook deliveries that succeeded.")
WEBHOOK_DEAD = Counter("orders_webhook_dead_total", "Webhook deliveries given up after the last retry.")
WEBHOOK_QUEUED = Counter("orders_webhook_queued_total", "Status events queued for an endpoint.")
WEBHOOK_LATENCY = Histogram(
    "orders_webhook_attempt_seconds",
    "Duration of webhook delivery attempts.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WEBHOOK_BACKLOG = Gauge(
    "orders_webhook_backlog_orders", "Orders with webhook deliveries waiting, per endpoint state.", ["state"]
)
WEBHOOK_ENDPOINTS = Gauge("orders_webhook_endpoints", "Registered webhook endpoints by state.", ["state"])
WEBHOOK_DISPATCH_FAILURES = Counter(
    "orders_webhook_dispatch_failures_total", "Rounds of the relay's delivery loop that failed (Redis away)."
)
WEBHOOK_DELIVERY_LAG = Histogram(
    "orders_webhook_delivery_lag_seconds",
    "From the status change to its successful delivery (retries included).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 120, 600, 3600),
)


def count_unknown_reply_fields(reply_type: str, names: Iterable[str]) -> None:
    """Count each ignored field of a reply by its name (never its value)."""
    for name in names:
        REPLY_UNKNOWN_FIELDS.labels(reply_type, _field_label(name)).inc()


def _field_label(name: str) -> str:
    # Partners choose these names: bound the series they can create, and keep odd names out of the exposition.
    if name in _field_labels:
        return name
    fits = 0 < len(name) <= MAX_FIELD_LABEL_LENGTH and name.isascii() and name.isprintable()
    if not fits or len(_field_labels) >= MAX_FIELD_LABELS:
        return "other"
    _field_labels.add(name)
    return name
