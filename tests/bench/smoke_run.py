"""Running a benchmark at its smoke size as CI does: `python -m bench.<name> --smoke --json <path>`."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def run_smoke(benchmark: str, json_path: Path, *extra: str, timeout: float) -> dict[str, Any]:
    """Run the benchmark as a child process from the repository root; fail with the tail of its output
    unless it exits 0. Returns the JSON results, with `figures` and `checks` turned into name → row maps."""
    command = [sys.executable, "-m", f"bench.{benchmark}", "--smoke", "--json", str(json_path), *extra]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    results: dict[str, Any] = json.loads(json_path.read_text())
    results["figures"] = {row["name"]: row for row in results["figures"]}
    results["checks"] = {row["name"]: row for row in results["checks"]}
    return results
