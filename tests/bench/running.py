"""Running a benchmark at its smoke size as CI does: `python -m bench.<name> --smoke --json <path>`."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def run_benchmark(name: str, results: Path, *extra: str, timeout: float = 240) -> dict[str, Any]:
    """Run the benchmark as a child process from the repository root; fail with the tail of its output
    unless it exits 0 and its verdict passed. Returns the JSON results, with `figures` and `checks` turned
    into name → row maps."""
    path = results / f"{name}.json"
    command = [sys.executable, "-m", f"bench.{name}", "--smoke", "--json", str(path), *extra]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False)
    output = f"exit {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    assert done.returncode == 0, output
    found: dict[str, Any] = json.loads(path.read_text())
    assert found["passed"] is True, output
    found["figures"] = {row["name"]: row for row in found["figures"]}
    found["checks"] = {row["name"]: row for row in found["checks"]}
    return found


def figure(results: dict[str, Any], name: str) -> Any:
    """The value of the figure called `name`."""
    return results["figures"][name]["value"]


WORKLOAD_VERDICTS = (
    "orders in their expected final status",
    "event sequences 1..n, one event id each",
    "entitlement balances exact",
    "outboxes empty",
    "no rejections or dead letters",
    "processes exit 0 on SIGTERM",
)
"""The verdicts every run of the crash loop's workload is held to (`bench.orders_workload.verify_outcome`)."""
WEBHOOK_VERDICTS = ("webhook deliveries missing", "webhooks in sequence order per order")
"""... and, when a relay runs, those about its deliveries."""


def assert_verdicts(results: dict[str, Any], *names: str) -> None:
    """Each named verdict was judged and held: a verdict the benchmark stopped judging fails as well."""
    checks = results["checks"]
    not_judged = [name for name in names if name not in checks]
    assert not not_judged, f"verdicts not judged: {not_judged}"
    failed = {name: checks[name]["value"] for name in names if checks[name]["met"] is not True}
    assert not failed, failed


def assert_percentiles_consistent(results: dict[str, Any], name: str) -> None:
    """The latency figures `name.format(point)` were measured from samples: 0 < p50 <= p95 <= p99."""
    p50, p95, p99 = (figure(results, name.format(point)) for point in ("p50", "p95", "p99"))
    assert 0 < p50 <= p95 <= p99, (name, p50, p95, p99)  # NaN (no samples) fails too
