"""CI smoke of the replay benchmark (`make bench-replay ARGS=--smoke`): after a 400-order run the service's
groups are rewound to offset 0 and everything is consumed again, with no state change and no new message."""

from pathlib import Path

import pytest

from tests.bench.running import run_benchmark


@pytest.mark.timeout(180)
def test_replay_smoke_changes_nothing(tmp_path: Path) -> None:
    results = run_benchmark("replay", tmp_path, timeout=170)

    figures, checks = results["figures"], results["checks"]
    assert figures["records re-consumed"]["value"] > 400  # every command, and the replies
    for verdict in (
        "groups rewound to offset 0",
        "re-consumed to the end",
        "no order changed",
        "entitlement balances unchanged",
        "no new events, rejections, dead letters or requests",
        "every re-consumed record seen as a duplicate, none applied",
    ):
        assert checks[verdict]["met"] is True, checks[verdict]
