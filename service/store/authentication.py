"""API keys: `ok_<key id>_<secret>`, shown once, stored only as a hash, checked on every request, each with
a bucket of requests it may make."""

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from redis.asyncio import Redis

from contracts.limits import API_KEYS_PER_CLIENT
from service.store.capped_sets import PROVISIONAL_MS, LimitReached, admit
from service.store.keys import api_key_bucket_key, api_key_key, client_api_keys_key
from service.store.scripts import LuaScript

PREFIX = "ok_"
_KEY_ID = re.compile(r"[0-9a-f]{16}")
"""What `issue` makes: anything else is no key of ours (and could not name a hash slot of one)."""

REVOKED_KEY_RETENTION_SECONDS = 30 * 24 * 3600
"""A revoked key's record (when it was created and revoked) is kept this long, for the operators."""


@dataclass(frozen=True)
class IssuedKey:
    """A new key; `token` is the only copy of the secret there will ever be."""

    key_id: str
    client_id: str
    token: str


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: `burst` requests at once, refilled at `per_second`."""

    per_second: float
    burst: int


@dataclass(frozen=True)
class Caller:
    """Who made a request with a valid key, and how long it must wait if it is over its key's rate."""

    client_id: str
    key_id: str
    retry_after_seconds: float
    """0 when the request may go ahead."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKeyStore:
    """Issue, check and revoke keys; a check reads Redis every time, so revocation takes effect at once."""

    def __init__(self, redis: "Redis") -> None:
        self._redis = redis
        self._authenticate = LuaScript("authenticate_request")

    async def issue(self, client_id: str, now: datetime, *, limit: int = API_KEYS_PER_CLIENT) -> IssuedKey:
        """A new key for the client; `LimitReached` if it holds `limit` unrevoked keys already."""
        key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        key = api_key_key(key_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                key,
                mapping={
                    "client_id": client_id,
                    "secret_sha256": _digest(secret),
                    "created_at": now.isoformat(),
                },
            )
            pipe.pexpire(key, PROVISIONAL_MS)  # until admitted (see service.store.capped_sets)
            await pipe.execute()
        if not await admit(self._redis, client_api_keys_key(client_id), key_id, limit, self._unrevoked):
            await self._redis.delete(key)
            raise LimitReached("unrevoked API keys", limit)
        await self._redis.persist(key)
        return IssuedKey(key_id, client_id, f"{PREFIX}{key_id}_{secret}")

    async def _unrevoked(self, key_ids: list[str]) -> list[bool]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key_id in key_ids:
                pipe.hmget(api_key_key(key_id), ["client_id", "revoked_at"])
            found = await pipe.execute()
        return [client_id is not None and revoked_at is None for client_id, revoked_at in found]

    async def authenticate(self, token: str, rate: RateLimit) -> Caller | None:
        """The caller a valid, unrevoked token belongs to, having taken one request from its key's bucket
        (or told how long to wait); None for anything else. One round trip."""
        if not token.startswith(PREFIX):
            return None
        key_id, _, secret = token[len(PREFIX) :].partition("_")
        if not secret or not _KEY_ID.fullmatch(key_id):
            return None
        found = await self._authenticate.run(
            self._redis,
            [api_key_key(key_id), api_key_bucket_key(key_id)],
            [_digest(secret), repr(rate.per_second), rate.burst],
        )
        if not found:
            return None
        client_id, wait_ms = found
        return Caller(client_id.decode(), key_id, wait_ms / 1000)

    async def revoke(self, key_id: str, now: datetime) -> bool:
        """Revoke a key at once; False if there is no such key."""
        key = api_key_key(key_id)
        client_id: bytes | None = await self._redis.hget(key, "client_id")  # type: ignore[assignment]
        if client_id is None:
            return False
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, "revoked_at", now.isoformat())
            pipe.expire(key, REVOKED_KEY_RETENTION_SECONDS)
            await pipe.execute()
        # It no longer counts against the client's bound (were this lost, the next full set drops it).
        await self._redis.srem(client_api_keys_key(client_id.decode()), key_id)
        return True
