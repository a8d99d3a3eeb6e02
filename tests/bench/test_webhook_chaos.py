"""CI smoke of the webhook chaos benchmark: misbehaving endpoints recover and get every event."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.chaos_receiver import Misbehaviour

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(240)
def test_webhook_chaos_smoke(tmp_path: Path) -> None:
    result_path = tmp_path / "r.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.webhook_chaos", "--smoke", "--json", str(result_path)],
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
    # The chaos really happened: each misbehaving endpoint failed in its own way before it recovered.
    assert figures["error_500: failures HTTP 500"] > 0
    assert figures["hang: failures timeout"] > 0
    assert any(name.startswith("disconnect: failures") for name in figures)
    assert not any(name.startswith("healthy: failures") for name in figures)
    for misbehaviour in Misbehaviour:
        assert figures[f"{misbehaviour.value}: deliveries"] >= figures["status events"]
