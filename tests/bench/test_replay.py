"""CI smoke of the replay benchmark (`make bench-replay ARGS=--smoke`): after a 400-order run the service's
groups are rewound to offset 0 and everything is consumed again, with no state change and no new message."""

from pathlib import Path

import pytest

from tests.bench.running import WORKLOAD_VERDICTS, assert_verdicts, run_benchmark


@pytest.mark.timeout(180)
def test_replay_smoke_changes_nothing(tmp_path: Path) -> None:
    """The first pass held the workload's verdicts; the replay re-read every record and changed nothing."""
    results = run_benchmark("replay", tmp_path, timeout=170)

    assert results["figures"]["records re-consumed"]["value"] > 400  # every command, and the replies
    assert_verdicts(
        results,
        *WORKLOAD_VERDICTS,
        "first pass consumed to the end",
        "groups rewound to offset 0",
        "re-consumed to the end",
        "no order changed",
        "entitlement balances unchanged",
        "claims, index, timers and anomalies unchanged",
        "no new events, rejections, dead letters or requests",
        "every re-consumed record seen as a duplicate, none applied",
    )
