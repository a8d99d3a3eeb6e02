"""CI smoke of the idle relay benchmark (`make bench-relay_idle ARGS=--smoke`): both sizes measured, the
relay delivers at rest and exits cleanly. No CPU figure is asserted: the smoke size on a shared CI machine
says nothing about one."""

from pathlib import Path

import pytest

from tests.bench.running import assert_verdicts, figure, run_benchmark


@pytest.mark.timeout(300)
def test_relay_idle_benchmark_smoke(tmp_path: Path) -> None:
    """Each size was measured, its event delivered, and the relay stopped cleanly."""
    report = run_benchmark("relay_idle", tmp_path)

    for size in ("10 endpoints", "300 endpoints"):
        assert_verdicts(
            report,
            f"{size}: an event published at rest is delivered",
            f"{size}: relay exited cleanly on SIGTERM",
        )
    few, many = (
        figure(report, "relay idle CPU, 10 endpoints"),
        figure(report, "relay idle CPU, 300 endpoints"),
    )
    assert 0 < few < 100 and 0 < many < 100
    assert figure(report, "extra idle CPU of the many") == pytest.approx(many - few)
