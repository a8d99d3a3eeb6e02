"""CI smoke of the broker floor benchmark (`make bench-broker_floor ARGS=--smoke`): both round trips and the
polling CPU measured. No figure is held to a value: the smoke size on a shared CI machine says nothing."""

from pathlib import Path

import pytest

from tests.bench.running import figure, run_benchmark


@pytest.mark.timeout(180)
def test_broker_floor_benchmark_measures_round_trips_and_polling(tmp_path: Path) -> None:
    """Each round trip has consistent percentiles, and the polling CPU is a share of the pollers'."""
    results = run_benchmark("broker_floor", tmp_path)

    for name in ("produce acknowledgement", "offset commit"):
        p50, p99 = (figure(results, f"{name} {point}, idle broker") for point in ("p50", "p99"))
        assert 0 < p50 <= p99, (name, p50, p99)
    pollers = results["parameters"]["pollers"]
    busy = figure(results, f"broker CPU, {pollers} idle pollers")
    assert busy > 0
    assert figure(results, "broker CPU per idle poller") == pytest.approx(busy / pollers)
