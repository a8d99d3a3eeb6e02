"""CI smoke of the scale-out benchmark (`make bench-scale_out ARGS=--smoke`): two service and two relay
instances share their consumer groups; one of each is SIGKILLed for good, and the survivors take over
every partition and finish the run with every verdict holding."""

from pathlib import Path

import pytest

from tests.bench.running import run_benchmark


@pytest.mark.timeout(240)
def test_scale_out_smoke_shares_partitions_and_survives_a_lost_instance(tmp_path: Path) -> None:
    results = run_benchmark("scale_out", tmp_path, timeout=230)

    checks = results["checks"]
    for verdict in (
        "every instance owned partitions before the kill",
        "the survivors own every partition after it",
        "orders in their expected final status",
        "event sequences 1..n, one event id each",
        "entitlement balances exact",
        "webhook deliveries missing",
        "webhooks in sequence order per order",
    ):
        assert checks[verdict]["met"] is True, checks[verdict]
    assert "service-2" in checks["every instance owned partitions before the kill"]["value"]
