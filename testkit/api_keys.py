"""API keys for tests, which share a few client ids across a whole session's Redis."""

from datetime import UTC, datetime

from redis.asyncio import Redis

from service.store.authentication import ApiKeyStore, IssuedKey

UNBOUNDED = 1_000_000
"""Tests of other things issue a key each for `client-a` and friends; tests/integration/
test_per_client_bounds.py is where the per-client bound is tested."""


async def issue_key(redis: Redis, client_id: str) -> IssuedKey:
    """A new key of `client_id`, however many the session issued for it before."""
    return await ApiKeyStore(redis).issue(client_id, datetime.now(UTC), limit=UNBOUNDED)
