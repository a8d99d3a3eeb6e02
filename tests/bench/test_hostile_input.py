"""CI smoke of the hostile-input benchmark: a small run must account for every hostile message."""

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from bench.fuzz import Fuzzer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(240)
def test_hostile_input_smoke(tmp_path: Path) -> None:
    result_path = tmp_path / "r.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.hostile_input", "--smoke", "--json", str(result_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=220,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(result_path.read_text())
    assert result["passed"] is True
    figures = {f["name"]: f["value"] for f in result["figures"]}
    # Every category was exercised, on both topics, and each kind of outcome was seen.
    sent = {name.removeprefix("sent ") for name in figures if name.startswith("sent ")}
    assert {name.split(".")[0] for name in sent} == {"commands", "replies"}
    fuzzer = Fuzzer(random.Random(0), 1024, "x", "a", "b", "c")
    assert sent == {*fuzzer.categories(), *fuzzer.targeted_categories()}
    assert figures["dead letters NOT_JSON"] > 0
    assert figures["dead letters SCHEMA"] > 0
    assert figures["dead letters TOO_LARGE"] > 0
    assert figures["rejections IDEMPOTENCY_CONFLICT"] > 0
    assert figures["rejections ORDER_NOT_FOUND"] > 0
    assert figures["anomalies UNKNOWN_ORDER"] > 0
    checks = {c["name"] for c in result["checks"]}
    assert "every hostile message has an outcome" in checks
