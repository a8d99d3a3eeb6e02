"""One delivery attempt: a signed POST with bounded time and bounded reading of the answer."""

import time
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

import aiohttp
from standardwebhooks.webhooks import Webhook

from service.store.webhook_endpoints import Endpoint


@dataclass(frozen=True)
class AttemptResult:
    """What the endpoint answered, or why it did not."""

    status: int | None
    latency_ms: int
    body: str
    error: str | None
    retry_after: float | None

    @property
    def delivered(self) -> bool:
        """Any 2xx within the timeout is success; 3xx is not (redirects are not followed)."""
        return self.status is not None and 200 <= self.status < 300


class HttpClient:
    """The relay's HTTP client: one aiohttp session, its connections shared by every endpoint and kept
    alive between attempts. aiohttp rather than httpx: on the relay benchmark's baseline it posts about
    8 times as many requests per CPU second, and the client is most of an attempt's cost.

    The session is made on first use, because aiohttp binds it to the running event loop.
    """

    def __init__(self, max_connections: int = 500) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=0,
                # Resolve on every new connection, as the delivery-time SSRF check does: a cached answer
                # would widen the window between the check and the connection.
                use_dns_cache=False,
            )
            self._session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> "HttpClient":
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


def http_client() -> HttpClient:
    """The relay's HTTP client (the benchmark's baseline uses the same)."""
    return HttpClient()


def signature_headers(endpoint: Endpoint, event_id: str, body: bytes, now: datetime) -> dict[str, str]:
    """Standard Webhooks headers; during a secret rotation the body is signed with every valid secret."""
    payload = body.decode()
    signatures = [Webhook(secret).sign(event_id, now, payload) for secret in endpoint.signing_secrets(now)]
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": " ".join(signatures),
        "content-type": "application/json",
        "user-agent": "orders-webhook-relay/1",
    }


async def post_event(
    client: HttpClient,
    endpoint: Endpoint,
    event_id: str,
    body: bytes,
    now: datetime,
    timeout: float,  # noqa: ASYNC109 - a per-request HTTP timeout handed to aiohttp, not a cancel scope
    max_response_bytes: int,
) -> AttemptResult:
    """POST the event to the endpoint once."""
    headers = signature_headers(endpoint, event_id, body, now)
    # Per phase, like the documented setting: waiting for a pooled connection plus connecting, then each
    # read of the answer. No total cap, so a slow but steady answer is read to its (bounded) excerpt.
    phases = aiohttp.ClientTimeout(total=None, connect=timeout, sock_connect=timeout, sock_read=timeout)
    started = time.monotonic()
    try:
        async with client.session.post(
            endpoint.url, data=body, headers=headers, timeout=phases, allow_redirects=False
        ) as response:
            excerpt = b""
            while len(excerpt) < max_response_bytes:
                chunk = await response.content.read(max_response_bytes - len(excerpt))
                if not chunk:
                    break
                excerpt += chunk
            return AttemptResult(
                response.status,
                _elapsed(started),
                excerpt.decode("utf-8", "replace"),
                None,
                _retry_after(response.status, response.headers.get("retry-after"), now),
            )
    except TimeoutError:
        return AttemptResult(None, _elapsed(started), "", f"no answer within {timeout}s", None)
    except (aiohttp.ClientError, OSError) as error:
        return AttemptResult(None, _elapsed(started), "", f"{type(error).__name__}: {error}"[:300], None)


def _elapsed(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _retry_after(status: int, value: str | None, now: datetime) -> float | None:
    """Seconds from a `Retry-After` header (delta or HTTP date) on 429 and 503."""
    if status not in (429, 503) or not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - now).total_seconds())
    except (TypeError, ValueError):
        return None
