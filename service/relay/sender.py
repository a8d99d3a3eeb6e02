"""One delivery attempt: a signed POST with bounded time and bounded reading of the answer."""

import asyncio
import base64
import functools
import hmac
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

from aiohttp.abc import AbstractResolver
from standardwebhooks.webhooks import Webhook

from service import tracing
from service.relay.http1 import Http1Client
from service.relay.safety import Network, PublicAddressResolver
from service.store.webhook_endpoints import Endpoint


@dataclass(frozen=True)
class AttemptResult:
    """What the endpoint answered, or why it did not."""

    status: int | None
    latency_ms: int
    body: str
    error: str | None
    retry_after: float | None
    request_headers: dict[str, str] | None = None
    """The headers sent, but for `webhook-signature` (kept out of the attempt log, as a secret's output)."""

    @property
    def delivered(self) -> bool:
        """Any 2xx within the timeout is success; 3xx is not (redirects are not followed)."""
        return self.status is not None and 200 <= self.status < 300


class HttpClient:
    """The relay's HTTP client: connections shared by every endpoint and kept alive between attempts
    (`service.relay.http1`, a client of the relay's own: aiohttp's request machinery was over half of the
    relay's CPU per delivery).

    Names are resolved by `PublicAddressResolver`: once per new connection, never for a reused one, with
    every address outside `allowed_networks` that is not public dropped, and the connection made only to
    what is left. `lookup` is where names are looked up (getaddrinfo in a thread by default; tests pass a
    stub DNS).
    """

    def __init__(
        self,
        allowed_networks: Sequence[Network] = (),
        *,
        max_connections: int = 500,
        lookup: AbstractResolver | None = None,
    ) -> None:
        self._resolver = PublicAddressResolver(list(allowed_networks), lookup)
        self.http = Http1Client(self._resolver, max_connections=max_connections)

    async def aclose(self) -> None:
        await self.http.aclose()
        await self._resolver.close()

    async def __aenter__(self) -> "HttpClient":
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


def http_client(allowed_networks: Sequence[Network] = ()) -> HttpClient:
    """The relay's HTTP client (the benchmark's baseline uses the same)."""
    return HttpClient(allowed_networks)


SETTLE_RESERVE_SECONDS = 5.0
"""Of a claim's lease, the time kept for recording the attempt's outcome after its deadline."""


def lease_seconds(timeout: float) -> float:
    """A claim's lease for attempts of `timeout` (ORDERS_RELAY_TIMEOUT_SECONDS): up to `timeout` from the
    claim to the start of the attempt, the attempt's own `timeout`, then the settle reserve."""
    return 2 * timeout + SETTLE_RESERVE_SECONDS


def attempt_deadline(timeout: float, *, lease_ms: int, now: datetime) -> float:
    """Seconds the attempt starting `now` may take: `timeout`, or less if the claim's lease (ending at epoch
    ms `lease_ms`) has less left than that plus the settle reserve. So an attempt always ends before its
    lease, and the queue cannot be claimed again, and attempted by another, while a request is in flight.
    Zero or less: too late to start one."""
    left = lease_ms / 1000 - now.timestamp() - SETTLE_RESERVE_SECONDS
    return min(timeout, round(left, 3))


def signature_headers(endpoint: Endpoint, event_id: str, body: bytes, now: datetime) -> dict[str, str]:
    """Standard Webhooks headers; during a secret rotation the body is signed with every valid secret.

    The signatures are the `standardwebhooks` library's (`Webhook(secret).sign`), byte for byte, made with
    one `hmac.digest` call each on keys decoded once: the library's signer builds an HMAC object and
    re-encodes the body on every call, a visible share of an attempt's CPU."""
    timestamp = str(int(now.timestamp()))
    signed = b"%s.%s.%s" % (event_id.encode(), timestamp.encode(), body)
    signatures = [
        "v1," + base64.b64encode(hmac.digest(_key(secret), signed, "sha256")).decode()
        for secret in endpoint.signing_secrets(now)
    ]
    return {
        "webhook-id": event_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": " ".join(signatures),
        "content-type": "application/json",
        "user-agent": "orders-webhook-relay/1",
    }


@functools.lru_cache(maxsize=4096)
def _key(secret: str) -> bytes:
    """A secret's HMAC key, decoded once, as `standardwebhooks.Webhook` decodes it (which also refuses an
    empty one); a rotated secret is a new key, and the cache is bounded so that rotations do not grow it."""
    # The library's own decoding (its private attribute), not a copy of it that could drift from it.
    return Webhook(secret)._whsecret


async def post_event(
    client: HttpClient,
    endpoint: Endpoint,
    event_id: str,
    body: bytes,
    now: datetime,
    timeout: float,  # noqa: ASYNC109 - the attempt's deadline, enforced in here
    max_response_bytes: int,
    traceparent: str | None = None,
) -> AttemptResult:
    """POST the event to the endpoint once, within one deadline of `timeout` seconds: from waiting for a
    pooled connection (or resolving and connecting) to the last byte of the answer read. A slow answer, one
    byte at a time, is cut off there like no answer at all. With tracing on, the attempt is a span, the
    child of `traceparent` (queued with the event), and the request carries its own `traceparent`.

    Raises `UnsafeTarget` when the endpoint's host resolves to no address that may be called."""
    with tracing.webhook_request(traceparent, endpoint.endpoint_id, endpoint.url) as span:
        result = await _post(client, endpoint, event_id, body, now, timeout, max_response_bytes, span.headers)
        span.answered(result.status, result.error)
        return result


async def _post(
    client: HttpClient,
    endpoint: Endpoint,
    event_id: str,
    body: bytes,
    now: datetime,
    timeout: float,  # noqa: ASYNC109 - the attempt's deadline, enforced in here
    max_response_bytes: int,
    trace_headers: dict[str, str],
) -> AttemptResult:
    headers = signature_headers(endpoint, event_id, body, now)
    headers.update(trace_headers)
    sent = {name: value for name, value in headers.items() if name != "webhook-signature"}
    started = time.monotonic()
    status: int | None = None
    try:
        async with asyncio.timeout(timeout):
            # Redirects are not followed: a 3xx is an answer like any other.
            response = await client.http.post(endpoint.url, headers, body)
            try:
                status = response.status
                excerpt = await response.read(max_response_bytes)
            finally:
                response.release()
            return AttemptResult(
                status,
                _elapsed(started),
                excerpt.decode("utf-8", "replace"),
                None,
                _retry_after(status, response.headers.get("retry-after"), now),
                sent,
            )
    except TimeoutError:
        unfinished = "" if status is None else f": status {status} came, the rest of the answer did not"
        error = f"no answer within {timeout}s{unfinished}"
        return AttemptResult(None, _elapsed(started), "", error, None, sent)
    except OSError as error:  # the connection, the answer (`HttpError`), or a lookup that failed
        failure = f"{type(error).__name__}: {error}"[:300]
        return AttemptResult(None, _elapsed(started), "", failure, None, sent)


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
