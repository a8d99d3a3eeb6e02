"""What every benchmark shares: the stack, the project's processes, progress, and the report.

A benchmark is a module with a `main()` that builds an `argparse` parser from `parser()`, then calls
`run(benchmark, args)` with an async function of `(Run) -> Report`. `run` starts the embedded stack (or uses
`KAFKA_BOOTSTRAP_SERVERS` / `REDIS_URL`), gives the run topic and group names of its own, prints the
report as a table and writes it as JSON. Reliability benchmarks add checks to the report; any failed
check makes the process exit 1.
"""

import argparse
import asyncio
import json
import os
import platform
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from service.config import RelaySettings, ResourceSimSettings, Settings
from service.devstack import EmbeddedStack, Endpoints
from service.kafka import ensure_topics, service_topics
from testkit.isolation import isolated_names

RESULTS_DIR = Path(__file__).parent / "results"
console = Console(stderr=True)
report_console = Console(width=None if sys.stdout.isatty() else 120)
"""Tables keep their rows on one line in CI logs and files, where there is no terminal width to follow."""


def parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark takes; add your own to the returned parser."""
    found = argparse.ArgumentParser(description=description)
    found.add_argument("--smoke", action="store_true", help="a small size that only proves it works (CI)")
    found.add_argument("--json", type=Path, default=None, help="where to write the results (JSON)")
    found.add_argument("--partitions", type=int, default=4, help="partitions of each topic")
    return found


# --- the run ----------------------------------------------------------------------------------------------


class BenchSettings(ResourceSimSettings, RelaySettings):
    """Every process's settings in one model, so one run configures the service, simulator and relay."""


@dataclass
class Run:
    """One benchmark run: where the stack answers, and settings with names no other run uses."""

    stack: EmbeddedStack
    endpoints: Endpoints
    settings: BenchSettings
    workdir: Path

    def environ(self, settings: Settings | None = None, **extra: str) -> dict[str, str]:
        """The environment that gives a child process `settings` (default: this run's)."""
        return settings_environment(settings or self.settings, **extra)


def run_settings(endpoints: Endpoints, run_id: str, **overrides: Any) -> BenchSettings:
    """Settings with topic and consumer-group names of this run's own."""
    return BenchSettings(
        **endpoints.settings(),  # type: ignore[arg-type]
        **isolated_names(run_id, BenchSettings),
        **overrides,
    )


def settings_environment(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment variables that reproduce `settings` in a child process."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "REDIS_URL": settings.redis_url.get_secret_value(),
    }
    for name, value in settings.model_dump(mode="json").items():  # networks, enums: as the env spells them
        if name in ("kafka_bootstrap_servers", "redis_url") or value is None:
            continue
        env[f"ORDERS_{name.upper()}"] = json.dumps(value) if isinstance(value, dict | list) else str(value)
    env.update(extra)
    return env


def run(
    benchmark: Callable[[Run], Coroutine[Any, Any, "Report"]],
    args: argparse.Namespace,
    *,
    redis_append_only: bool = False,
    **overrides: Any,
) -> None:
    """Start the stack, run `benchmark`, print and save its report; exit 1 if any check failed."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    stack = EmbeddedStack(redis_append_only=redis_append_only)
    try:
        endpoints = stack.start()
        run_id = f"bench{uuid.uuid4().hex[:6]}"
        settings = run_settings(endpoints, run_id, topic_partitions=args.partitions, **overrides)
        asyncio.run(_create_topics(settings))
        report = asyncio.run(benchmark(Run(stack, endpoints, settings, stack.workdir)))
    finally:
        stack.stop()
    report.show()
    path = report.save(args.json)
    console.print(f"results written to {path}")
    if not report.passed:
        sys.exit(1)


async def _create_topics(settings: Settings) -> None:
    await ensure_topics(
        settings.kafka_bootstrap_servers, service_topics(settings), settings.topic_partitions, 1
    )


# --- the project's processes ------------------------------------------------------------------------------


class OrdersProcess:
    """An `orders <subcommand>` child process that can be started, killed outright, and started again.

    Its output goes to a log file in the run's directory; `ready` is set once `consumers` of its
    consumers own partitions, so a benchmark knows when inputs will be read at once.
    """

    def __init__(self, subcommand: str, env: dict[str, str], log_path: Path, consumers: int = 1) -> None:
        self.subcommand = subcommand
        self.name = log_path.stem
        self.argv = ["service.cli", subcommand]
        """What runs as `python -m <argv>`: the `orders` CLI unless a benchmark runs a module of its own."""
        self._env = env
        self._log_path = log_path
        self._consumers = consumers
        self.process: asyncio.subprocess.Process | None = None
        self.ready = asyncio.Event()
        self.started = asyncio.Event()
        self.starts = 0
        self._watcher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the process (again)."""
        self.ready.clear()
        self.started.clear()
        self.starts += 1
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", *self.argv,
            env=self._env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self._watcher = asyncio.create_task(self._watch(self.process))

    async def _watch(self, process: asyncio.subprocess.Process) -> None:
        assert process.stderr is not None
        assignments = 0
        with self._log_path.open("ab") as log:
            async for line in process.stderr:
                log.write(line)
                log.flush()  # benchmarks read the logs while the process runs
                if b"started successfully" in line:
                    self.started.set()  # signal handlers installed: SIGTERM now drains gracefully
                if b"assigned to partitions" in line:
                    assignments += 1
                    if assignments >= self._consumers:
                        self.ready.set()

    async def wait_ready(self, within: float = 60.0) -> None:
        """Return once every consumer of the process owns partitions; fail if it exits first."""
        assert self.process is not None
        exited = asyncio.create_task(self.process.wait())
        ready = asyncio.create_task(self.ready.wait())
        done, _ = await asyncio.wait({exited, ready}, timeout=within, return_when=asyncio.FIRST_COMPLETED)
        exited.cancel()
        ready.cancel()
        if ready not in done:
            raise RuntimeError(f"orders {self.subcommand} not ready (see {self._log_path})")

    async def kill(self) -> None:
        """SIGKILL: no drain, no cleanup, exactly like a crash."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self, within: float = 30.0) -> int:
        """SIGTERM and wait for the drain; returns the exit code."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), within)
        except TimeoutError:
            await self.kill()
            raise
        finally:
            if self._watcher is not None:
                await self._watcher

    @property
    def log_path(self) -> Path:
        """Where the process's output goes."""
        return self._log_path

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the running process has used so far."""
        return cpu_seconds(self.pid)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) process `pid` has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- measuring --------------------------------------------------------------------------------------------


@contextmanager
def progress(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr; yields `advance(n)`."""
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


async def paced(total: int, rate: float) -> AsyncIterator[range]:
    """The indexes of `total` items to send at `rate` a second: every few milliseconds, those due by then,
    catching up after any hiccup rather than drifting."""
    started, position = time.monotonic(), 0
    while position < total:
        due = min(total, int((time.monotonic() - started) * rate) + 1)
        yield range(position, due)
        position = max(position, due)
        await asyncio.sleep(0.002)  # pacing: the offered rate is the point of these phases


def percentiles(samples: Sequence[float], points: Sequence[float] = (50, 95, 99)) -> dict[str, float]:
    """`{"p50": ..., "p95": ..., "p99": ...}` of `samples` (nearest rank); NaN when there are none."""
    ordered = sorted(samples)
    found = {}
    for point in points:
        if not ordered:
            found[f"p{point:g}"] = float("nan")
            continue
        rank = max(0, min(len(ordered) - 1, round(point / 100 * len(ordered)) - 1))
        found[f"p{point:g}"] = ordered[rank]
    return found


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_kib = 0
    with suppress(OSError, ValueError, IndexError):
        memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kib / 2**20, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


# --- the report -------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One figure, and the target it is held to (if any)."""

    name: str
    value: float | int | str
    unit: str = ""
    target: str = ""
    met: bool | None = None


@dataclass
class Report:
    """A benchmark's figures and checks; `passed` is false if any check failed."""

    name: str
    parameters: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    checks: list[Row] = field(default_factory=list)
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    started: float = field(default_factory=time.monotonic)

    def add(
        self, name: str, value: float | str, unit: str = "", target: str = "", met: bool | None = None
    ) -> None:
        """Record a figure; `target`/`met` say what it is held to and whether it met it (not a verdict)."""
        self.rows.append(Row(name, value, unit, target, met))

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        """Record a verdict: a violated check makes the run fail."""
        self.checks.append(Row(name, detail, met=ok))
        return ok

    @property
    def passed(self) -> bool:
        return all(c.met for c in self.checks)

    def show(self) -> None:
        table = Table(title=f"{self.name}  ({', '.join(f'{k}={v}' for k, v in self.parameters.items())})")
        for column in ("figure", "value", "unit", "target", ""):
            table.add_column(column, justify="right" if column == "value" else "left")
        for row in self.rows:
            table.add_row(row.name, _format(row.value), row.unit, row.target, _mark(row.met))
        for check in self.checks:
            table.add_row(check.name, _format(check.value), "", "", _mark(check.met))
        report_console.print(table)
        if self.checks:
            verdict = "PASS" if self.passed else "FAIL"
            failed = [c.name for c in self.checks if not c.met]
            report_console.print(f"verdict: {verdict}" + (f" ({', '.join(failed)})" if failed else ""))

    def save(self, path: Path | None) -> Path:
        path = path or RESULTS_DIR / f"{self.name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "benchmark": self.name,
            "started_at": self.started_at,
            "duration_seconds": round(time.monotonic() - self.started, 1),
            "machine": machine(),
            "parameters": self.parameters,
            "figures": [asdict(r) for r in self.rows],
            "checks": [asdict(c) for c in self.checks],
            "passed": self.passed,
        }
        path.write_text(json.dumps(document, indent=2) + "\n")
        return path


def _format(value: float | int | str) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return value


def _mark(met: bool | None) -> str:
    return {True: "ok", False: "MISSED", None: ""}[met]
