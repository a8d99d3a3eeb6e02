"""CI smoke run of the webhook relay benchmark: small, but every phase and check end to end."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_relay_benchmark_smoke(tmp_path: Path) -> None:
    """Exit 0, every check passed, and the figures the targets are held to were measured."""
    results = tmp_path / "r.json"
    finished = subprocess.run(
        [sys.executable, "-m", "bench.relay", "--smoke", "--json", str(results)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )

    assert finished.returncode == 0, finished.stdout + finished.stderr
    report = json.loads(results.read_text())
    assert report["passed"] is True
    checks = {c["name"] for c in report["checks"]}
    assert "saturation: every event delivered" in checks
    assert "latency: every event delivered" in checks
    assert "signatures verify" in checks
    figures = {f["name"]: f["value"] for f in report["figures"]}
    assert figures["relay throughput at saturation"] > 0
    assert figures["baseline: HTTP client alone"] > 0
    assert 0 < figures["latency p99 (publish → delivery)"] < 60_000
