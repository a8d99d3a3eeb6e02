"""CI smoke of the Redis outage benchmark (`make bench-redis_outage ARGS=--smoke`): Redis (with AOF) is
stopped for 4 s mid-run; no consumer group commits meanwhile, everything resumes, and the crash-loop
verdicts hold."""

import os
from pathlib import Path

import pytest

from tests.bench.running import run_benchmark


@pytest.mark.skipif(
    bool(os.environ.get("REDIS_URL")), reason="the outage needs the embedded Redis, which REDIS_URL replaces"
)
@pytest.mark.timeout(180)
def test_redis_outage_smoke_pauses_and_resumes(tmp_path: Path) -> None:
    results = run_benchmark("redis_outage", tmp_path, timeout=170)

    figures, checks = results["figures"], results["checks"]
    for group in ("commands", "replies", "relay"):
        assert checks[f"{group} group: no offset committed while Redis was down"]["met"] is True
        assert figures[f"{group} group: first commit after Redis was back"]["unit"] == "s"  # it resumed
    assert checks["input kept coming during the outage"]["met"] is True
    assert checks["orders in their expected final status"]["met"] is True
    assert checks["webhook deliveries missing"]["met"] is True
