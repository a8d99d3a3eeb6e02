"""Shared fixtures: the embedded Kafka broker and Redis, started once per test session."""

from collections.abc import Iterator

import pytest

from service.devstack import EmbeddedStack, Endpoints


@pytest.fixture(scope="session")
def stack() -> Iterator[Endpoints]:
    """The real broker and Redis: embedded ones, or those named by KAFKA_BOOTSTRAP_SERVERS / REDIS_URL."""
    embedded = EmbeddedStack()
    try:
        yield embedded.start()
    finally:
        embedded.stop()
