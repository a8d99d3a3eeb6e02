"""A webhook receiver that costs as little CPU as possible, run as its own process by the relay benchmark.

It must not be what limits the figures, so it is a bare `asyncio.Protocol` speaking just enough HTTP/1.1
for keep-alive POSTs with a `Content-Length` (what httpx sends). It answers every request `200 ok` and
records the `webhook-id` header with the wall-clock arrival time (`time.time()`, comparable with the
benchmark process's send times on the same machine). One request in `--sample-every` is kept whole (headers
and body) so that the benchmark can verify its signature.

The benchmark drives it through its standard streams (`ReceiverProcess` below):

- stdout: `listening <port>` once, then `count <n>` at most every 20 ms while requests arrive, so that
  the benchmark can await a count instead of polling;
- stdin: `reset` (forget everything received) and `dump <path>` (write what was received as JSON lines:
  `{"id", "at"}`, and `"headers"`, `"body"` for the sampled ones), each answered with `done`.
"""

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
COUNT_INTERVAL_SECONDS = 0.02


@dataclass
class Arrivals:
    """Every request received since the last reset."""

    ids: list[bytes]
    times: list[float]
    samples: dict[int, tuple[bytes, bytes]]  # index in `ids` → (raw header block, body)
    sample_every: int
    resets: int = 0

    def reset(self) -> None:
        self.resets += 1
        self.ids.clear()
        self.times.clear()
        self.samples.clear()

    def dump(self, path: Path) -> None:
        with path.open("w") as out:
            for index, (webhook_id, at) in enumerate(zip(self.ids, self.times, strict=True)):
                record: dict[str, Any] = {"id": webhook_id.decode(), "at": at}
                if index in self.samples:
                    headers, body = self.samples[index]
                    record["headers"] = _headers(headers)
                    record["body"] = body.decode()
                out.write(json.dumps(record) + "\n")


def _headers(block: bytes) -> dict[str, str]:
    lines = block.decode("latin-1").split("\r\n")[1:]
    return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}


class MinimalHttp(asyncio.Protocol):
    """One keep-alive connection: parse `Content-Length` framed requests, answer each at once."""

    def __init__(self, arrivals: Arrivals) -> None:
        self._arrivals = arrivals
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end]
            lowered = head.lower()
            length = _header_value(lowered, head, b"\r\ncontent-length:")
            total = end + 4 + (int(length) if length else 0)
            if len(buffer) < total:
                break
            arrivals = self._arrivals
            arrivals.times.append(time.time())
            arrivals.ids.append(_header_value(lowered, head, b"\r\nwebhook-id:") or b"")
            index = len(arrivals.ids) - 1
            if index % arrivals.sample_every == 0:
                arrivals.samples[index] = (head, buffer[end + 4 : total])
            assert self._transport is not None
            self._transport.write(RESPONSE)
            buffer = buffer[total:]
        self._buffer = buffer


def _header_value(lowered: bytes, head: bytes, name: bytes) -> bytes | None:
    """The value of header `name` (lowercase, with its leading CRLF and colon), from the original case."""
    start = lowered.find(name)
    if start < 0:
        return None
    start += len(name)
    stop = head.find(b"\r\n", start)
    return head[start : stop if stop >= 0 else len(head)].strip()


async def serve(port: int, sample_every: int) -> None:
    arrivals = Arrivals([], [], {}, sample_every)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: MinimalHttp(arrivals), "127.0.0.1", port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    _say(f"listening {bound}")
    reporter = asyncio.create_task(_report_counts(lambda: (arrivals.resets, len(arrivals.ids))))
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    async for line in stdin:
        command, _, argument = line.decode().strip().partition(" ")
        if command == "reset":
            arrivals.reset()
        elif command == "dump":
            arrivals.dump(Path(argument))
        _say("done")
    reporter.cancel()
    server.close()


async def _report_counts(state: Callable[[], tuple[int, int]]) -> None:
    """Announce the count when it changed (or was reset); a pacing loop, so the benchmark need not poll."""
    announced = (0, 0)
    while True:
        await asyncio.sleep(COUNT_INTERVAL_SECONDS)
        if (now := state()) != announced:
            announced = now
            _say(f"count {now[1]}")


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main() -> None:
    found = argparse.ArgumentParser(description=__doc__)
    found.add_argument("--port", type=int, default=0)
    found.add_argument("--sample-every", type=int, default=100, help="keep one request in this many whole")
    args = found.parse_args()
    asyncio.run(serve(args.port, args.sample_every))


# --- the benchmark's handle on it -------------------------------------------------------------------------


@dataclass
class Arrival:
    """One request as the receiver recorded it."""

    webhook_id: str
    at: float
    headers: dict[str, str] | None = None
    body: bytes | None = None


class ReceiverProcess:
    """The receiver as a child process: start, await counts, reset, read what arrived."""

    def __init__(self, workdir: Path, sample_every: int = 100) -> None:
        self._workdir = workdir
        self._sample_every = sample_every
        self._process: asyncio.subprocess.Process | None = None
        self._count = 0
        self._count_changed = asyncio.Condition()
        self._replies: asyncio.Queue[str] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.receiver", "--sample-every", str(self._sample_every),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert self._process.stdout is not None
        first = await asyncio.wait_for(self._process.stdout.readline(), 30)
        if not first.startswith(b"listening "):
            raise RuntimeError(f"receiver did not start: {first!r}")
        self.port = int(first.split()[1])
        self._reader = asyncio.create_task(self._read(self._process.stdout))

    async def _read(self, stdout: asyncio.StreamReader) -> None:
        async for line in stdout:
            word, _, value = line.decode().strip().partition(" ")
            if word == "count":
                async with self._count_changed:
                    self._count = int(value)
                    self._count_changed.notify_all()
            else:
                await self._replies.put(word)

    async def wait_for_count(
        self, count: int, within: float, advance: Callable[[int], None] | None = None
    ) -> int:
        """Wait until `count` requests arrived (or `within` seconds passed); returns how many did."""
        shown = 0
        with_deadline = asyncio.timeout(within)
        try:
            async with with_deadline, self._count_changed:
                while self._count < count:
                    await self._count_changed.wait()
                    if advance is not None:
                        advance(min(self._count, count) - shown)
                        shown = min(self._count, count)
        except TimeoutError:
            pass
        if advance is not None:
            advance(min(self._count, count) - shown)
        return self._count

    async def _command(self, line: str) -> None:
        assert self._process is not None
        assert self._process.stdin is not None
        self._process.stdin.write(line.encode() + b"\n")
        await self._process.stdin.drain()
        reply = await asyncio.wait_for(self._replies.get(), 60)
        if reply != "done":
            raise RuntimeError(f"receiver answered {reply!r} to {line!r}")

    async def reset(self) -> None:
        """Forget every request so far (the next phase counts from 0)."""
        await self._command("reset")
        async with self._count_changed:
            self._count = 0

    async def arrivals(self) -> list[Arrival]:
        """Every request since the last reset, in arrival order."""
        path = self._workdir / f"arrivals-{os.getpid()}.jsonl"
        await self._command(f"dump {path}")
        found = []
        with path.open() as lines:
            for line in lines:
                record = json.loads(line)
                body = record.get("body")
                found.append(
                    Arrival(record["id"], record["at"], record.get("headers"), body and body.encode())
                )
        path.unlink()
        return found

    async def stop(self) -> None:
        if self._process is None:
            return
        assert self._process.stdin is not None
        self._process.stdin.close()  # end of commands: the receiver exits
        try:
            await asyncio.wait_for(self._process.wait(), 10)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()
        if self._reader is not None:
            await self._reader


if __name__ == "__main__":
    main()
