"""Shared fixtures (the embedded Kafka broker and Redis, started once per session) and the test tiers."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from service.devstack import EmbeddedStack, Endpoints

TESTS = Path(__file__).parent
TIERS = ("unit", "integration", "relay", "system", "bench", "browser")
"""Each is a directory of tests/ and the marker of its tests (`make <tier>` runs `pytest -m <tier>`)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with its directory's tier; a test outside every tier directory is an error."""
    for item in items:
        parts = item.path.relative_to(TESTS).parts
        tier = parts[0] if len(parts) > 1 else None
        if tier not in TIERS:
            raise pytest.UsageError(f"{item.nodeid}: every test lives in one of tests/{{{','.join(TIERS)}}}/")
        item.add_marker(tier)


@pytest.fixture(scope="session")
def stack() -> Iterator[Endpoints]:
    """The real broker and Redis: embedded ones, or those named by KAFKA_BOOTSTRAP_SERVERS / REDIS_URL."""
    embedded = EmbeddedStack()
    try:
        yield embedded.start()
    finally:
        embedded.stop()
