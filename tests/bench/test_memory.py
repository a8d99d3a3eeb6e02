"""The memory benchmark keeps working, and its retention verdicts hold at a small size."""

from pathlib import Path

import pytest

from tests.bench.running import assert_verdicts, figure, run_benchmark


@pytest.mark.timeout(300)
def test_memory_benchmark_measures_orders_and_sees_them_expire(tmp_path: Path) -> None:
    """Every order reached its status, retention forgot the failed ones and kept the confirmed ones, and a
    stored order's footprint was measured (a plausible size, not a budget)."""
    results = run_benchmark("memory", tmp_path)

    assert_verdicts(
        results,
        "every stored order confirmed",
        "every refused order failed",
        "failed orders forgotten after the retention",
        "confirmed orders kept until their service date",
    )
    assert 100 < figure(results, "Redis memory per stored order") < 100_000
