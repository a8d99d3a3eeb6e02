"""CI smoke of the Redis outage benchmark (`make bench-redis_outage ARGS=--smoke`): Redis (with AOF) is
stopped for 4 s mid-run; no consumer group commits meanwhile, everything resumes, and the crash-loop
verdicts hold."""

import os
from pathlib import Path

import pytest

from tests.bench.running import WEBHOOK_VERDICTS, WORKLOAD_VERDICTS, assert_verdicts, run_benchmark


@pytest.mark.skipif(
    bool(os.environ.get("REDIS_URL")), reason="the outage needs the embedded Redis, which REDIS_URL replaces"
)
@pytest.mark.timeout(180)
def test_redis_outage_smoke_pauses_and_resumes(tmp_path: Path) -> None:
    """No group committed while Redis was down, each resumed after it, and the workload's verdicts held."""
    results = run_benchmark("redis_outage", tmp_path, timeout=170)

    groups = ("commands", "replies", "relay")
    assert_verdicts(
        results,
        *(f"{group} group: no offset committed while Redis was down" for group in groups),
        "input kept coming during the outage",
        "processes ran through the outage",
        *WORKLOAD_VERDICTS,
        *WEBHOOK_VERDICTS,
    )
    for group in groups:
        assert (
            results["figures"][f"{group} group: first commit after Redis was back"]["unit"] == "s"
        )  # resumed
