"""Prometheus counters for every path a message can take, so tests and operators can account for each."""

from prometheus_client import Counter

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
MESSAGES_PUBLISHED = Counter(
    "orders_messages_published_total", "Messages published from the outbox.", ["destination"]
)
TRANSITION_CONFLICTS = Counter(
    "orders_transition_conflicts_total", "Transitions retried because the order changed concurrently."
)
