"""CI smoke of the hostile-input benchmark: a small run must account for every hostile message."""

import random
from pathlib import Path

import pytest

from bench.fuzz import Fuzzer
from tests.bench.running import run_benchmark

pytestmark = pytest.mark.integration


@pytest.mark.timeout(240)
def test_hostile_input_smoke(tmp_path: Path) -> None:
    result = run_benchmark("hostile_input", tmp_path, timeout=220)
    figures = {name: row["value"] for name, row in result["figures"].items()}
    # Every category was exercised, on both topics, and each kind of outcome was seen.
    sent = {name.removeprefix("sent ") for name in figures if name.startswith("sent ")}
    assert {name.split(".")[0] for name in sent} == {"commands", "replies"}
    fuzzer = Fuzzer(random.Random(0), 1024, "x", "a", "b", "c")
    assert sent == {*fuzzer.categories(), *fuzzer.targeted_categories()}
    assert figures["dead letters NOT_JSON"] > 0
    assert figures["dead letters SCHEMA"] > 0
    assert figures["dead letters TOO_LARGE"] > 0
    assert figures["rejections IDEMPOTENCY_CONFLICT"] > 0
    assert figures["rejections INVALID_COMMAND"] > 0
    assert figures["rejections ORDER_NOT_FOUND"] > 0
    assert figures["anomalies UNKNOWN_ORDER"] > 0
    checks = result["checks"]
    assert "every hostile message has an outcome" in checks
