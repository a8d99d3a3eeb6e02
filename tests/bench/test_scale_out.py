"""CI smoke of the scale-out benchmark (`make bench-scale_out ARGS=--smoke`): two service and two relay
instances share their consumer groups; one of each is SIGKILLed for good, and the survivors take over
every partition and finish the run with every verdict holding."""

from pathlib import Path

import pytest

from tests.bench.running import WEBHOOK_VERDICTS, WORKLOAD_VERDICTS, assert_verdicts, run_benchmark


@pytest.mark.timeout(240)
def test_scale_out_smoke_shares_partitions_and_survives_a_lost_instance(tmp_path: Path) -> None:
    """Both instances of each shared the partitions, the survivors took them all, every verdict held."""
    results = run_benchmark("scale_out", tmp_path, timeout=230)

    assert_verdicts(
        results,
        "every instance owned partitions before the kill",
        "the survivors own every partition after it",
        *WORKLOAD_VERDICTS,
        *WEBHOOK_VERDICTS,
    )
    assert "service-2" in results["checks"]["every instance owned partitions before the kill"]["value"]
