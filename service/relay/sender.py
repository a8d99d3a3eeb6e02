"""One delivery attempt: a signed POST with bounded time and bounded reading of the answer."""

import time
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

import httpx
from standardwebhooks.webhooks import Webhook

from service.relay.endpoints import Endpoint


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


def http_client() -> httpx.AsyncClient:
    """The relay's HTTP client: connections shared by every endpoint, kept alive between attempts."""
    return httpx.AsyncClient(limits=httpx.Limits(max_connections=500, max_keepalive_connections=100))


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
    client: httpx.AsyncClient,
    endpoint: Endpoint,
    event_id: str,
    body: bytes,
    now: datetime,
    timeout: float,  # noqa: ASYNC109 - a per-request HTTP timeout handed to httpx, not a cancel scope
    max_response_bytes: int,
) -> AttemptResult:
    """POST the event to the endpoint once."""
    headers = signature_headers(endpoint, event_id, body, now)
    started = time.monotonic()
    try:
        async with client.stream(
            "POST", endpoint.url, content=body, headers=headers, timeout=timeout, follow_redirects=False
        ) as response:
            excerpt = b""
            async for chunk in response.aiter_bytes():
                excerpt += chunk
                if len(excerpt) >= max_response_bytes:
                    break
            return AttemptResult(
                response.status_code,
                _elapsed(started),
                excerpt[:max_response_bytes].decode("utf-8", "replace"),
                None,
                _retry_after(response, now),
            )
    except httpx.TimeoutException:
        return AttemptResult(None, _elapsed(started), "", f"no answer within {timeout}s", None)
    except httpx.HTTPError as error:
        return AttemptResult(None, _elapsed(started), "", f"{type(error).__name__}: {error}"[:300], None)


def _elapsed(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _retry_after(response: httpx.Response, now: datetime) -> float | None:
    """Seconds from a `Retry-After` header (delta or HTTP date) on 429 and 503."""
    value = response.headers.get("retry-after")
    if response.status_code not in (429, 503) or not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - now).total_seconds())
    except (TypeError, ValueError):
        return None
