"""The benchmarks' smoke runs: each benchmark at its `--smoke` size, as a user runs it, in a subprocess."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).parents[2]


def run_benchmark(name: str, results: Path, *args: str, timeout: float = 240) -> dict[str, Any]:
    """Run `python -m bench.<name> --smoke`, assert it exited 0, and return its JSON results."""
    path = results / f"{name}.json"
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", "--smoke", "--json", str(path), *args],
        cwd=REPO,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    output = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode == 0, output[-4000:]
    found: dict[str, Any] = json.loads(path.read_text())
    assert found["passed"] is True, output[-4000:]
    return found


def figure(results: dict[str, Any], name: str) -> Any:
    """The value of the figure called `name`."""
    return next(row["value"] for row in results["figures"] if row["name"] == name)
