"""CI smoke of the crash-loop benchmark (`make bench-crash_loop ARGS=--smoke`): the service and the relay are
each SIGKILLed 4 times while 800 orders go through them (waitlisted, no-show and changed orders among them),
and every verdict must hold: no order lost or stuck, no sequence gap, no effect applied twice (exact
entitlement balances), empty outboxes, no webhook delivery missing or out of order. It replaces the former
tests/system/test_crash_recovery.py, whose scenario (4 SIGKILLs of the service under load) the benchmark
runs through the same `orders service`."""

from pathlib import Path

import pytest

from tests.bench.running import WEBHOOK_VERDICTS, WORKLOAD_VERDICTS, assert_verdicts, run_benchmark


@pytest.mark.timeout(240)
def test_crash_loop_smoke_passes_every_verdict(tmp_path: Path) -> None:
    """4 SIGKILLs each of the service and the relay really happened, and every crash-loop verdict held."""
    results = run_benchmark("crash_loop", tmp_path, timeout=230)

    figures = results["figures"]
    assert figures["kills of the service"]["value"] == 4
    assert figures["kills of the relay"]["value"] == 4
    assert figures["orders"]["value"] == 800
    assert figures["status events"]["value"] > 800  # most orders have two events
    assert figures["  of them changed once Confirmed"]["value"] > 0  # changes met the kills too
    assert_verdicts(results, *WORKLOAD_VERDICTS, *WEBHOOK_VERDICTS)
