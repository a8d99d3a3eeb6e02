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
