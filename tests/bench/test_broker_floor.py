"""CI smoke of the broker floor benchmark (`make bench-broker_floor ARGS=--smoke`): both round trips, the
polling CPU and the steady hop measured. No figure is held to a value: the smoke size on a shared CI machine
says nothing."""

from pathlib import Path

import pytest

from tests.bench.running import figure, run_benchmark


@pytest.mark.timeout(180)
def test_broker_floor_benchmark_measures_round_trips_and_polling(tmp_path: Path) -> None:
    """Each round trip has consistent percentiles, the polling CPU is a share of the pollers', and the steady
    hop saw its fetches (the hook on aiokafka's fetcher still runs) and consistent lags."""
    results = run_benchmark("broker_floor", tmp_path)

    for name in ("produce acknowledgement", "offset commit"):
        p50, p99 = (figure(results, f"{name} {point}, idle broker") for point in ("p50", "p99"))
        assert 0 < p50 <= p99, (name, p50, p99)
    pollers = results["parameters"]["pollers"]
    busy = figure(results, f"broker CPU, {pollers} idle pollers")
    assert busy > 0
    assert figure(results, "broker CPU per idle poller") == pytest.approx(busy / pollers)

    p50, p99, most = (
        figure(results, f"steady hop: acknowledged → read {point}") for point in ("p50", "p99", "max")
    )
    assert 0 < p50 <= p99 <= most
    assert figure(results, "steady hop: fetches") > 0
    assert 0 <= figure(results, "steady hop: records a fetch passed by") <= 100
