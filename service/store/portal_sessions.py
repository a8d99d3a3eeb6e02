"""Portal links and sessions in Redis: only digests of the tokens are stored, and every record expires.

A link's token opens one session at most: the record is read and deleted in one step (GETDEL), so two
requests racing with the same link cannot both get a session. The session cookie's value is a random token
too; its record holds the identity (one client, or the operator) and the session's CSRF token.
"""

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from redis.asyncio import Redis

from service.store.keys import PORTAL_OPERATOR_FAILURES, portal_link_key, portal_session_key

OPERATOR_FAILURES_PER_MINUTE = 10
"""Failed operator logins allowed a minute, across every API instance; past them, every login waits."""

LINK_PREFIX = "pl_"
SESSION_PREFIX = "ps_"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class PortalLink:
    """A link's token, shown once, and when it stops opening."""

    token: str
    expires_at: datetime


@dataclass(frozen=True)
class PortalSession:
    """Who a session is for: one client's pages, or the operator's."""

    token: str
    client_id: str | None
    operator: bool
    csrf: str


class PortalSessions:
    """Links and sessions, each with its own expiry (`ORDERS_PORTAL_LINK_TTL_SECONDS`, `…_SESSION_…`)."""

    def __init__(self, redis: Redis, session_ttl_seconds: int) -> None:
        self._redis = redis
        self._session_ttl = session_ttl_seconds

    async def issue_link(self, client_id: str, ttl_seconds: int, now: datetime) -> PortalLink:
        """A new single-use link for `client_id`, valid `ttl_seconds`."""
        token = LINK_PREFIX + secrets.token_urlsafe(32)
        await self._redis.set(portal_link_key(_digest(token)), client_id, ex=ttl_seconds)
        return PortalLink(token, now + timedelta(seconds=ttl_seconds))

    async def open_link(self, token: str) -> PortalSession | None:
        """The session the link opens, or None if it is unknown, expired or used already."""
        if not token.startswith(LINK_PREFIX):
            return None
        client_id = await self._redis.getdel(portal_link_key(_digest(token)))
        if client_id is None:
            return None
        return await self._start(
            client_id.decode() if isinstance(client_id, bytes) else client_id, operator=False
        )

    async def operator_locked(self) -> bool:
        """Whether the operator login is refused for now: too many wrong passwords this minute."""
        failures = await self._redis.get(PORTAL_OPERATOR_FAILURES)
        return failures is not None and int(failures) >= OPERATOR_FAILURES_PER_MINUTE

    async def operator_failed(self) -> None:
        """Count a wrong password; the count expires a minute after the first of them."""
        async with self._redis.pipeline(transaction=True) as pipe:
            # The expiry is set with the counter only (INCR keeps it): EXPIRE NX needs Redis 7.
            pipe.set(PORTAL_OPERATOR_FAILURES, 0, ex=60, nx=True)
            pipe.incr(PORTAL_OPERATOR_FAILURES)
            await pipe.execute()

    async def start_operator(self) -> PortalSession:
        """A session of the operator's pages (after the password was checked)."""
        return await self._start(None, operator=True)

    async def _start(self, client_id: str | None, *, operator: bool) -> PortalSession:
        session = PortalSession(
            SESSION_PREFIX + secrets.token_urlsafe(32), client_id, operator, secrets.token_urlsafe(32)
        )
        record = json.dumps({"client_id": client_id, "operator": operator, "csrf": session.csrf})
        await self._redis.set(portal_session_key(_digest(session.token)), record, ex=self._session_ttl)
        return session

    async def get(self, token: str) -> PortalSession | None:
        """The session a cookie names, if it has not expired or ended."""
        if not token.startswith(SESSION_PREFIX):
            return None
        raw = await self._redis.get(portal_session_key(_digest(token)))
        if raw is None:
            return None
        record = json.loads(raw)
        return PortalSession(token, record["client_id"], bool(record["operator"]), record["csrf"])

    async def end(self, token: str) -> None:
        """Sign out: the cookie names nothing from now on."""
        await self._redis.delete(portal_session_key(_digest(token)))
