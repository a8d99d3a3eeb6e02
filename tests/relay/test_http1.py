"""The relay's own HTTP/1.1 client (`service.relay.http1`) against a raw TCP server that answers with
scripted bytes: keep-alive only after an answer read to its end, caps, chunked and close-delimited bodies,
informational answers, no redirects, connection errors, deadlines, the connection cap and idle expiry."""

import asyncio
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from ipaddress import ip_network
from pathlib import Path

import pytest

from service.relay import http1
from service.relay.http1 import BadRequest, Http1Client, HttpError, ServerDisconnected
from service.relay.safety import PublicAddressResolver
from service.relay.sender import HttpClient, post_event
from service.store.webhook_endpoints import Endpoint
from testkit.stub_dns import StubDns

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class RawServer:
    """Reads one request at a time (head and Content-Length body) and writes the next scripted answer, or
    `default`; `None` as an answer: hold the request, answer nothing."""

    answers: list[bytes | None] = field(default_factory=list)
    default: bytes | None = OK
    close_after: bool = False
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    open_now: int = 0
    most_at_once: int = 0
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks?x=1"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_at_once = max(self.most_at_once, self.open_now)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                self.requests.append(head + await reader.readexactly(length))
                answer = self.answers.pop(0) if self.answers else self.default
                if answer is None:
                    await reader.read()  # until the client goes away
                    return
                writer.write(answer)
                await writer.drain()
                if self.close_after:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            self.open_now -= 1
            writer.close()
            self.closed.set()

    async def stop(self) -> None:
        self._server.close()


@pytest.fixture
async def server() -> AsyncIterator[RawServer]:
    found = RawServer()
    await found.start()
    yield found
    await found.stop()


@pytest.fixture
async def client() -> AsyncIterator[Http1Client]:
    found = Http1Client(PublicAddressResolver([]))
    yield found
    await found.aclose()


async def _post(client: Http1Client, url: str, cap: int = 1024) -> tuple[int, bytes]:
    answer = await client.post(url, {"webhook-id": "evt-1"}, b'{"a":1}')
    try:
        return answer.status, await answer.read(cap)
    finally:
        answer.release()


async def test_a_request_is_one_post_with_its_headers_and_length_and_the_connection_is_kept(
    server: RawServer, client: Http1Client
) -> None:
    assert await _post(client, server.url) == (200, b"ok")
    assert await _post(client, server.url) == (200, b"ok")
    assert server.connections == 1, "kept alive"
    assert server.requests[0] == (
        b"POST /hooks?x=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nwebhook-id: evt-1\r\ncontent-length: 7\r\n\r\n"
        b'{"a":1}' % server.port
    )


async def test_a_chunked_answer_is_read_to_its_end_and_the_connection_kept(
    server: RawServer, client: Http1Client
) -> None:
    server.answers = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n"
    ]
    assert await _post(client, server.url) == (200, b"abcde")
    assert await _post(client, server.url) == (200, b"ok")
    assert server.connections == 1


@pytest.mark.parametrize("size", [b"0x3", b"+3", b"0_3", b" 3", b"-0", b"3 ab", b"1000000000000000"])
async def test_a_chunk_size_that_is_not_hex_digits_is_a_bad_answer(
    server: RawServer, client: Http1Client, size: bytes
) -> None:
    """`int(..., 16)` would read several of these as a size (0x3, +3, 0_3 are 3) where another reader of the
    same bytes may not: the client refuses the answer, and never reuses its connection."""
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%s\r\nabc\r\n0\r\n\r\n" % size
    await _refused_and_not_reused(server, client, answer, "bad chunk size")


async def test_a_chunk_size_may_have_whitespace_before_its_extensions(
    server: RawServer, client: Http1Client
) -> None:
    server.answers = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3 ;x=y\r\nabc\r\n0\r\n\r\n"]
    assert await _post(client, server.url) == (200, b"abc")


@pytest.mark.parametrize("length", [b"\xb2", b"+2", b"0x2", b"2 2"])
async def test_a_content_length_that_is_not_decimal_digits_is_a_bad_answer(
    server: RawServer, client: Http1Client, length: bytes
) -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %s\r\n\r\nok" % length
    await _refused_and_not_reused(server, client, answer, "bad Content-Length")


async def _refused_and_not_reused(server: RawServer, client: Http1Client, answer: bytes, reason: str) -> None:
    """`answer` fails the attempt with `reason`; the next attempt goes on a new connection."""
    server.answers = [answer]
    with pytest.raises(HttpError, match=reason):
        await _post(client, server.url)
    await server.closed.wait()
    assert await _post(client, server.url) == (200, b"ok")
    assert server.connections == 2


async def test_an_answer_longer_than_the_cap_is_cut_there_and_its_connection_closed(
    server: RawServer, client: Http1Client
) -> None:
    server.answers = [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"]
    assert await _post(client, server.url, cap=4) == (200, b"0123")
    await server.closed.wait()
    assert await _post(client, server.url) == (200, b"ok")
    assert server.connections == 2


async def test_connection_close_and_a_body_without_length_are_not_reused(
    server: RawServer, client: Http1Client
) -> None:
    server.answers = [b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"]
    assert await _post(client, server.url) == (200, b"ok")
    server.answers = [b"HTTP/1.0 200 OK\r\n\r\nuntil the end"]
    server.close_after = True
    assert await _post(client, server.url) == (200, b"until the end")
    assert server.connections == 2


async def test_informational_answers_are_skipped_and_a_redirect_is_not_followed(
    server: RawServer, client: Http1Client
) -> None:
    server.answers = [
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/\r\n"
        b"Content-Length: 0\r\n\r\n"
    ]
    assert await _post(client, server.url) == (302, b"")
    assert len(server.requests) == 1
    server.answers = [b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"]
    assert await _post(client, server.url) == (204, b""), "no body, whatever the length says"
    assert await _post(client, server.url) == (200, b"ok")
    assert server.connections == 1


async def test_a_server_that_closes_mid_answer_is_a_disconnection(
    server: RawServer, client: Http1Client
) -> None:
    server.answers = [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"]
    server.close_after = True
    with pytest.raises(ServerDisconnected):
        await _post(client, server.url)
    server.answers, server.default = [b"HTTP/1.1 200"], None
    with pytest.raises(ServerDisconnected):
        await _post(client, server.url)


async def test_a_header_with_a_line_break_is_refused_and_nothing_sent(
    server: RawServer, client: Http1Client
) -> None:
    with pytest.raises(BadRequest):
        await client.post(server.url, {"webhook-id": "evt\r\nx-injected: 1"}, b"{}")
    assert server.connections == 0


async def test_only_one_connection_at_a_time_under_a_cap_of_one(server: RawServer) -> None:
    capped = Http1Client(PublicAddressResolver([]), max_connections=1)
    server.answers = [b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"] * 3
    server.close_after = True  # its count drops as it answers, before the client can connect again
    try:
        results = await asyncio.gather(*(_post(capped, server.url) for _ in range(3)))
    finally:
        await capped.aclose()
    assert results == [(200, b"ok")] * 3
    assert server.connections == 3 and server.most_at_once == 1 and capped._open == 0


async def test_an_idle_connection_is_closed_after_the_keepalive(
    server: RawServer, client: Http1Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http1, "KEEPALIVE_SECONDS", 0.05)
    assert await _post(client, server.url) == (200, b"ok")
    await asyncio.wait_for(server.closed.wait(), 5)  # closed by the client's expiry, not by the server
    assert client._open == 0


# --- through `post_event`, as the worker calls it ---------------------------------------------------------


def _endpoint(url: str) -> Endpoint:
    now = datetime.now(UTC).isoformat()
    return Endpoint.model_validate(
        {
            "endpoint_id": "ep-1",
            "client_id": "client-1",
            "url": url,
            "secrets": [{"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "created_at": now}],
            "created_at": now,
        }
    )


async def test_post_event_records_a_silent_server_as_no_answer_within_the_deadline(server: RawServer) -> None:
    server.default = None
    async with HttpClient() as relay_client:
        result = await post_event(
            relay_client, _endpoint(server.url), "evt-1", b"{}", datetime.now(UTC), 0.2, 1024
        )
    assert result.status is None and result.error == "no answer within 0.2s"
    await asyncio.wait_for(server.closed.wait(), 5)  # the connection is not kept for the next attempt


async def test_post_event_records_a_refused_connection_and_an_unresolvable_name() -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    async with HttpClient(lookup=StubDns({})) as relay_client:
        refused = await post_event(
            relay_client, _endpoint(f"http://127.0.0.1:{port}/"), "evt-1", b"{}", datetime.now(UTC), 2, 1024
        )
        unresolved = await post_event(
            relay_client, _endpoint("http://nowhere.test/"), "evt-1", b"{}", datetime.now(UTC), 2, 1024
        )
    assert refused.status is None and f"Cannot connect to host 127.0.0.1:{port}" in (refused.error or "")
    assert unresolved.status is None and "cannot resolve nowhere.test" in (unresolved.error or "")


async def test_post_event_reads_retry_after_and_the_excerpt(server: RawServer) -> None:
    server.answers = [b"HTTP/1.1 503 Busy\r\nRetry-After: 7\r\nContent-Length: 4\r\n\r\nbusy"]
    async with HttpClient() as relay_client:
        result = await post_event(
            relay_client, _endpoint(server.url), "evt-1", b"{}", datetime.now(UTC), 2, 1024
        )
    assert (result.status, result.body, result.retry_after) == (503, "busy", 7.0)


async def test_an_address_that_swallows_connections_does_not_hold_the_attempt(server: RawServer) -> None:
    """The name answers an address whose listener never accepts (its backlog full: SYNs are dropped) first,
    the server's second: the second is tried alongside after the happy-eyeballs delay, not at the deadline."""
    swallowing = socket.socket()
    swallowing.bind(("127.0.0.3", 0))
    swallowing.listen(0)
    port = swallowing.getsockname()[1]
    fillers = []
    for _ in range(3):  # fill the backlog: later SYNs go unanswered
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.3", port))
        fillers.append(filler)
    twin = await asyncio.start_server(server._serve, "127.0.0.2", port)
    dns = StubDns({"twin.test": [["127.0.0.3", "127.0.0.2"]]})
    client = Http1Client(PublicAddressResolver([ip_network("127.0.0.0/8")], dns))
    try:
        async with asyncio.timeout(3):
            assert await _post(client, f"http://twin.test:{port}/") == (200, b"ok")
    finally:
        await client.aclose()
        twin.close()
        swallowing.close()
        for filler in fillers:
            filler.close()


# --- https -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for `localhost` (made with the openssl CLI), and its key."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl to make a certificate with")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_https_is_verified_against_the_hostname_and_reused(certificate: tuple[Path, Path]) -> None:
    """A server whose certificate the client trusts is posted to over TLS, its connection kept; with the
    system's CAs (the default) the same server fails verification, a failed attempt like any other."""
    cert, key = certificate
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    server = RawServer()
    server._server = await asyncio.start_server(server._serve, "127.0.0.1", 0, ssl=server_tls)
    server.port = server._server.sockets[0].getsockname()[1]
    url = f"https://localhost:{server.port}/hooks"
    resolver = PublicAddressResolver([ip_network("127.0.0.0/8")], StubDns({"localhost": [["127.0.0.1"]]}))
    trusting = Http1Client(resolver, tls=ssl.create_default_context(cafile=str(cert)))
    default = Http1Client(resolver)
    try:
        assert await _post(trusting, url) == (200, b"ok")
        assert await _post(trusting, url) == (200, b"ok")
        assert server.connections == 1
        with pytest.raises(HttpError, match="CERTIFICATE_VERIFY_FAILED"):
            await _post(default, url)
    finally:
        await trusting.aclose()
        await default.aclose()
        await server.stop()
