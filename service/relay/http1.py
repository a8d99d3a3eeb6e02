"""The relay's HTTP/1.1 client: one POST per call, over connections kept alive between attempts.

Why not aiohttp: on the relay benchmark's drain, aiohttp's request machinery (a session request, a
`ClientRequest`, payload and writer objects, a response with its stream reader, the connector's bookkeeping)
cost about 0.19 ms of CPU per delivery, over half of the relay's CPU per delivery; a request written in one
`transport.write` and its answer parsed from the protocol's buffer cost about 0.02 ms. The relay needs only
a small part of HTTP: POST a body, read the status, the headers and at most a capped excerpt of the answer,
follow no redirects, decode nothing.

What it does, and what the tests in tests/relay/test_http1.py pin:

- Names are resolved by `PublicAddressResolver`, once per new connection and never for a reused one, and
  the connection is made only to an address it returned: the first to accept, the next one tried
  alongside after `HAPPY_EYEBALLS_DELAY`, as aiohttp's connector did. An address in the URL is connected
  to without a lookup (`check_target` checks it before each attempt).
- A connection is reused only after an answer read to its end (by Content-Length or the last chunk), over
  HTTP/1.1, without `Connection: close`. An answer cut at the excerpt's cap, one without a length, an
  attempt cancelled (its deadline) or failed, closes its connection. Idle connections are closed after
  `KEEPALIVE_SECONDS`.
- At most `max_connections` are open at once; beyond them a request waits for one to be released.
- Informational answers (1xx) are skipped; 204 and 304 have no body.
- Deadlines are the caller's (`post_event` puts the whole attempt under one).
"""

import asyncio
import ipaddress
import re
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

import yarl

from service.relay.safety import PublicAddressResolver

KEEPALIVE_SECONDS = 15.0
"""How long an idle connection is kept for the next request to its host (aiohttp's default)."""

HAPPY_EYEBALLS_DELAY = 0.25
"""Seconds a connection attempt has before the next address is tried alongside it (aiohttp's default)."""

MAX_HEAD_BYTES = 64 * 1024
"""The most an answer's status line and headers may take."""


# RFC 9112: a chunk size is hex digits only (then optional whitespace before its extensions), a length
# decimal digits only. `int()` would take more ("0x1f", "+5", "1_0", " 5", other scripts' digits), and a
# client that reads a length its server's proxies read otherwise is how answers get mixed up.
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,15})[ \t]*")
_CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")


class HttpError(OSError):
    """The connection or the answer failed: a failed attempt (its class name and text go to the log)."""


class ServerDisconnected(HttpError):
    """The server closed the connection before the answer was complete."""


class BadRequest(HttpError):
    """The request cannot be sent as it is (a header that would split it); nothing was sent."""


class BadAnswer(HttpError):
    """The answer is not HTTP/1.x the client can read."""


@dataclass(frozen=True)
class _Target:
    """What a URL's requests share, computed once per URL."""

    key: tuple[str, str, int]
    host: str
    port: int
    tls: bool
    request_line: bytes
    """`POST <path> HTTP/1.1` and the Host header."""


def _target(url: str) -> _Target:
    parsed = yarl.URL(url)
    host, port, scheme = parsed.raw_host or "", parsed.port or 0, parsed.scheme
    line = b"POST %s HTTP/1.1\r\nHost: %s\r\n" % (
        (parsed.raw_path_qs or "/").encode(),  # percent-encoded by yarl: ASCII
        (parsed.host_port_subcomponent or "").encode(),
    )
    return _Target((scheme, host, port), host, port, scheme == "https", line)


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection: the bytes received so far, and a waiter for more."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.closed = False
        self.busy = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not its subclasses

    def data_received(self, data: bytes) -> None:
        if not self.busy:  # nothing was asked: a server talking out of turn is not to be reused
            self.close()
            return
        self.buffer += data
        self._wake()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def more(self) -> None:
        """Wait for more bytes (or the close); raises `ServerDisconnected` if it is closed already."""
        if self.closed:
            raise ServerDisconnected("Server disconnected")
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter  # the caller looks again at the buffer, and at `closed`

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


@dataclass
class Answer:
    """An answer's status and headers (names lower-cased); `read` takes its body, then `release`."""

    status: int
    headers: Mapping[str, str]
    _connection: _Connection
    _pool: "Http1Client"
    _target: _Target
    _length: int | None
    """Body bytes still to come by Content-Length; None: chunked or until the connection closes."""
    _chunked: bool
    _reusable: bool
    _complete: bool = False
    _chunk_left: int = 0
    _crlf_owed: bool = False

    async def read(self, cap: int) -> bytes:
        """The body, or its first `cap` bytes; the connection is kept only if the body was read to its end."""
        if self._chunked:
            return await self._read_chunked(cap)
        connection, taken = self._connection, bytearray()
        while len(taken) < cap:
            buffer = connection.buffer
            wanted = cap - len(taken) if self._length is None else min(cap - len(taken), self._length)
            if self._length == 0:
                self._complete = True
                break
            if buffer:
                piece = bytes(buffer[:wanted])
                del buffer[:wanted]
                taken += piece
                if self._length is not None:
                    self._length -= len(piece)
                continue
            if connection.closed:
                if self._length is not None:
                    raise ServerDisconnected("Server disconnected before the body's end")
                break  # a body delimited by the connection's close
            await connection.more()
        if self._length == 0:
            self._complete = True
        return bytes(taken)

    async def _read_chunked(self, cap: int) -> bytes:
        connection, taken = self._connection, bytearray()
        buffer = connection.buffer
        while len(taken) < cap:
            if self._chunk_left:
                if not buffer:
                    await connection.more()
                    continue
                piece = bytes(buffer[: min(self._chunk_left, cap - len(taken))])
                del buffer[: len(piece)]
                taken += piece
                self._chunk_left -= len(piece)
                self._crlf_owed = self._chunk_left == 0  # the CRLF after the chunk's data
                continue
            end = buffer.find(b"\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD_BYTES:
                    raise BadAnswer("chunk header too long")
                await connection.more()
                continue
            line = bytes(buffer[:end])
            del buffer[: end + 2]
            if self._crlf_owed:
                if line:
                    raise BadAnswer("no CRLF after a chunk")
                self._crlf_owed = False
                continue
            digits = _CHUNK_SIZE.fullmatch(line.split(b";", 1)[0])
            if digits is None:
                raise BadAnswer(f"bad chunk size {line[:40]!r}")
            size = int(digits[1], 16)
            if size == 0:
                await self._skip_trailers()
                self._complete = True
                break
            self._chunk_left = size
        return bytes(taken)

    async def _skip_trailers(self) -> None:
        buffer = self._connection.buffer
        while True:
            end = buffer.find(b"\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD_BYTES:
                    raise BadAnswer("trailers too long")
                await self._connection.more()
                continue
            line = bytes(buffer[:end])
            del buffer[: end + 2]
            if not line:
                return

    def release(self) -> None:
        """Back to the pool if the answer was read to its end and the connection may be kept, else closed."""
        connection = self._connection
        reuse = self._complete and self._reusable and not connection.buffer and not connection.closed
        self._pool._release(self._target, connection, reuse=reuse)


class Http1Client:
    """Keep-alive connections by (scheme, host, port), at most `max_connections` open in all."""

    def __init__(
        self,
        resolver: PublicAddressResolver,
        *,
        max_connections: int = 500,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """`tls`: how https connections check their servers (default: the system's CAs, hostnames checked)."""
        self._resolver = resolver
        self._max = max_connections
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._open = 0
        self._freed: asyncio.Event | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._tls = tls
        self._targets: dict[str, _Target] = {}

    async def post(self, url: str, headers: Mapping[str, str], body: bytes) -> Answer:
        """Send the request (one write) and read its answer's head; the caller reads the body, then releases.

        On an error or a cancellation the connection is closed, never reused."""
        target = self._targets.get(url)
        if target is None:
            if len(self._targets) >= 4096:  # bounded: URLs change with registrations
                self._targets.clear()
            target = self._targets[url] = _target(url)
        head = [target.request_line]
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
                raise BadRequest(f"header {name!r} carries a line break")
            head.append(b"%s: %s\r\n" % (name.encode(), value.encode()))
        head.append(b"content-length: %d\r\n\r\n" % len(body))
        connection = await self._acquire(target)
        try:
            assert connection.transport is not None
            connection.busy = True
            connection.transport.write(b"".join(head) + body)
            return await self._answer(target, connection)
        except BaseException:
            self._release(target, connection, reuse=False)
            raise

    async def _answer(self, target: _Target, connection: _Connection) -> Answer:
        buffer = connection.buffer
        while True:
            end = buffer.find(b"\r\n\r\n")
            while end < 0:
                if len(buffer) > MAX_HEAD_BYTES:
                    raise BadAnswer("answer head too large")
                await connection.more()
                end = buffer.find(b"\r\n\r\n")
            lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
            del buffer[: end + 4]
            version, _, rest = lines[0].partition(" ")
            code = rest[:3]
            if version not in ("HTTP/1.1", "HTTP/1.0") or len(code) != 3 or not code.isdigit():
                raise BadAnswer(f"bad status line {lines[0][:60]!r}")
            status = int(code)
            headers: dict[str, str] = {}
            lengths = set()
            for line in lines[1:]:
                name, colon, value = line.partition(":")
                if not colon or not name or name != name.strip():
                    raise BadAnswer(f"bad header line {line[:60]!r}")
                lowered, value = name.lower(), value.strip()
                if lowered == "content-length":
                    lengths.add(value)
                headers[lowered] = f"{headers[lowered]}, {value}" if lowered in headers else value
            if 100 <= status < 200 and status != 101:
                continue  # informational: the answer follows
            break
        chunked = headers.get("transfer-encoding", "").lower().rsplit(",", 1)[-1].strip() == "chunked"
        length: int | None = None
        if status in (204, 304):
            length, chunked = 0, False
        elif not chunked and lengths:
            if len(lengths) > 1 or not _CONTENT_LENGTH.fullmatch(next(iter(lengths))):
                raise BadAnswer("bad Content-Length")
            length = int(next(iter(lengths)))
        tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        delimited = chunked or length is not None  # else the body ends with the connection
        reusable = version == "HTTP/1.1" and "close" not in tokens and delimited and status != 101
        return Answer(status, headers, connection, self, target, length, chunked, reusable)

    async def _acquire(self, target: _Target) -> _Connection:
        loop = asyncio.get_running_loop()
        idle = self._idle.get(target.key)
        now = loop.time()
        while idle:
            connection = idle.pop()
            if not connection.closed and now - connection.idle_since < KEEPALIVE_SECONDS:
                return connection
            self._dispose(connection)
        while self._open >= self._max:
            if not self._close_an_idle():
                self._freed = self._freed or asyncio.Event()
                self._freed.clear()
                await self._freed.wait()
        self._open += 1
        try:
            return await self._connect(target)
        except BaseException:
            self._open -= 1
            self._signal_freed()
            raise

    async def _connect(self, target: _Target) -> _Connection:
        if target.tls and self._tls is None:
            self._tls = ssl.create_default_context()
        tls = self._tls if target.tls else None
        addresses = (
            [target.host]
            if _is_address(target.host)
            else [a["host"] for a in await self._resolver.resolve(target.host, target.port, socket.AF_UNSPEC)]
        )
        try:
            return await self._race(addresses, target, tls)
        except OSError as failure:
            raise HttpError(
                failure.errno or 0, f"Cannot connect to host {target.host}:{target.port} ({failure})"
            ) from failure

    async def _race(self, addresses: list[str], target: _Target, tls: ssl.SSLContext | None) -> _Connection:
        """A connection to the first of `addresses` that accepts, the next one tried alongside whenever the
        ones started have failed or `HAPPY_EYEBALLS_DELAY` has passed (as aiohttp's connector does, RFC
        8305): an address that swallows its connection attempts, say a broken IPv6 route, does not cost the
        whole deadline. Connections that come too late are closed. Raises the last error if none accepts."""
        loop = asyncio.get_running_loop()
        server_hostname = target.host if tls else None

        async def open_to(address: str) -> _Connection:
            _, connection = await loop.create_connection(
                _Connection, address, target.port, ssl=tls, server_hostname=server_hostname
            )
            return connection

        left = list(addresses)
        running: set[asyncio.Task[_Connection]] = set()
        failure: OSError | None = None
        try:
            while left or running:
                if left:
                    running.add(asyncio.ensure_future(open_to(left.pop(0))))
                done, running = await asyncio.wait(
                    running,
                    timeout=HAPPY_EYEBALLS_DELAY if left else None,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                won = [task.result() for task in done if task.exception() is None]
                for task in done:
                    error = task.exception()
                    if error is not None and not isinstance(error, OSError):
                        raise error
                    failure = error or failure
                if won:
                    for extra in won[1:]:
                        extra.close()
                    return won[0]
        finally:
            for task in running:
                task.cancel()
                task.add_done_callback(_close_late)
        assert failure is not None
        raise failure

    def _release(self, target: _Target, connection: _Connection, *, reuse: bool) -> None:
        connection.busy = False
        if not reuse or connection.closed:
            self._dispose(connection)
            return
        connection.idle_since = asyncio.get_running_loop().time()
        self._idle.setdefault(target.key, []).append(connection)
        if self._expiry is None:
            self._expiry = asyncio.get_running_loop().call_later(KEEPALIVE_SECONDS, self._expire)
        self._signal_freed()

    def _dispose(self, connection: _Connection) -> None:
        connection.close()
        self._open -= 1
        self._signal_freed()

    def _signal_freed(self) -> None:
        if self._freed is not None:
            self._freed.set()

    def _close_an_idle(self) -> bool:
        for key, idle in self._idle.items():
            if idle:
                self._dispose(idle.pop(0))
                if not idle:
                    del self._idle[key]
                return True
        return False

    def _expire(self) -> None:
        """Close the connections idle for `KEEPALIVE_SECONDS`; again later while any are idle."""
        self._expiry = None
        now = asyncio.get_running_loop().time()
        for key in list(self._idle):
            kept = []
            for connection in self._idle[key]:
                if connection.closed or now - connection.idle_since >= KEEPALIVE_SECONDS:
                    self._dispose(connection)
                else:
                    kept.append(connection)
            if kept:
                self._idle[key] = kept
            else:
                del self._idle[key]
        if self._idle:
            self._expiry = asyncio.get_running_loop().call_later(KEEPALIVE_SECONDS / 2, self._expire)

    async def aclose(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        for idle in self._idle.values():
            for connection in idle:
                self._dispose(connection)
        self._idle.clear()


def _close_late(task: "asyncio.Task[_Connection]") -> None:
    """A connection attempt that lost the race but connected before its cancellation took: closed."""
    if not task.cancelled() and task.exception() is None:
        task.result().close()


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
