"""API keys: `ok_<key id>_<secret>`, shown once, stored only as a hash, checked on every request."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from redis.asyncio import Redis

from service.store.keys import api_key_key, client_api_keys_key

PREFIX = "ok_"


@dataclass(frozen=True)
class IssuedKey:
    """A new key; `token` is the only copy of the secret there will ever be."""

    key_id: str
    client_id: str
    token: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKeyStore:
    """Issue, check and revoke keys; a check reads Redis every time, so revocation takes effect at once."""

    def __init__(self, redis: "Redis") -> None:
        self._redis = redis

    async def issue(self, client_id: str, now: datetime) -> IssuedKey:
        """A new key for the client."""
        key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        await self._redis.hset(
            api_key_key(key_id),
            mapping={"client_id": client_id, "secret_sha256": _digest(secret), "created_at": now.isoformat()},
        )
        await self._redis.sadd(client_api_keys_key(client_id), key_id)
        return IssuedKey(key_id, client_id, f"{PREFIX}{key_id}_{secret}")

    async def client_of(self, token: str) -> str | None:
        """The client a valid, unrevoked token belongs to; None for anything else."""
        if not token.startswith(PREFIX) or token.count("_") < 2:
            return None
        key_id, secret = token[len(PREFIX) :].split("_", 1)
        stored: list[bytes | None] = await self._redis.hmget(  # type: ignore[assignment]
            api_key_key(key_id), ["client_id", "secret_sha256", "revoked_at"]
        )
        client_id, digest, revoked_at = stored
        if client_id is None or digest is None or revoked_at is not None:
            return None
        if not hmac.compare_digest(digest.decode(), _digest(secret)):
            return None
        return str(client_id.decode())

    async def revoke(self, key_id: str, now: datetime) -> bool:
        """Revoke a key; False if there is no such key."""
        if not await self._redis.exists(api_key_key(key_id)):
            return False
        await self._redis.hset(api_key_key(key_id), "revoked_at", now.isoformat())
        return True
