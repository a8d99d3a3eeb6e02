"""The pipeline benchmark keeps working: a small run through the real service, and the raw baseline."""

from pathlib import Path

import pytest

from tests.bench.running import figure, run_benchmark


@pytest.mark.timeout(300)
def test_pipeline_benchmark_runs_and_measures_both_pipes(tmp_path: Path) -> None:
    results = run_benchmark("pipeline", tmp_path)

    assert results["machine"]["cores"] >= 1
    assert figure(results, "saturation throughput") > 0
    assert figure(results, "baseline throughput (raw aiokafka)") > 0
    assert "saturation: every order through" in results["checks"]
