"""CI smoke of the webhook chaos benchmark: misbehaving endpoints recover and get every event."""

from pathlib import Path

import pytest

from bench.chaos_receiver import Misbehaviour
from tests.bench.running import assert_verdicts, run_benchmark


@pytest.mark.timeout(240)
def test_webhook_chaos_smoke(tmp_path: Path) -> None:
    """Each endpoint misbehaved in its own way, then every event reached every endpoint in order, signed."""
    result = run_benchmark("webhook_chaos", tmp_path, timeout=220)
    figures = {name: row["value"] for name, row in result["figures"].items()}
    # The chaos really happened: each misbehaving endpoint failed in its own way before it recovered.
    assert figures["error_500: failures HTTP 500"] > 0
    assert figures["hang: failures timeout"] > 0
    assert any(name.startswith("disconnect: failures") for name in figures)
    assert not any(name.startswith("healthy: failures") for name in figures)
    for misbehaviour in Misbehaviour:
        assert figures[f"{misbehaviour.value}: deliveries"] >= figures["status events"]
    assert_verdicts(
        result,
        "every event delivered to every endpoint",
        "in order per order (first deliveries by sequence)",
        "every signature valid",
        "no dead deliveries",
        "no endpoint disabled",
        "relay never crashed",
    )
