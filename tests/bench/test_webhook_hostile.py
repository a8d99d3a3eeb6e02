"""CI smoke of the hostile mode of the webhook chaos benchmark (`make bench-webhook_chaos ARGS="--hostile
--smoke"`): the victim's events all arrive once in both runs while the attacker's 64 endpoints are attempted.
The latency ratio is reported, not asserted: the smoke size on a shared CI machine says nothing about it."""

from pathlib import Path

import pytest

from tests.bench.running import assert_percentiles_consistent, assert_verdicts, figure, run_benchmark


@pytest.mark.timeout(300)
def test_webhook_hostile_smoke(tmp_path: Path) -> None:
    """Both runs delivered every victim event once, the attack really happened, and the figures exist."""
    report = run_benchmark("webhook_chaos", tmp_path, "--hostile", timeout=280)

    assert_verdicts(
        report,
        "control: every victim event delivered once",
        "attack: every victim event delivered once",
        "attack: the attacker's endpoints were attempted",
        "control: relay exited cleanly on SIGTERM",
        "attack: relay exited cleanly on SIGTERM",
    )
    for run in ("control", "attack"):
        assert_percentiles_consistent(report, f"victim latency {{}}, {run}")
    assert figure(report, "victim p99 under attack / control") > 0
