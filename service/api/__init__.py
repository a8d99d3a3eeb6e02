"""The HTTP API: Order Details for clients that do not consume Kafka, health and metrics for operators."""
