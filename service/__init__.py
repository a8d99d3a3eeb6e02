"""The order service: consumers, state store, webhook relay and HTTP API."""
