"""CI smoke of the hostile-input benchmark: a small run must account for every hostile message."""

import random
from pathlib import Path

import pytest

from bench.fuzz import Fuzzer
from tests.bench.running import assert_verdicts, run_benchmark


@pytest.mark.timeout(240)
def test_hostile_input_smoke(tmp_path: Path) -> None:
    """Every category of hostile message was sent and each kind of outcome seen, and every verdict held."""
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
    assert_verdicts(
        result,
        "every hostile message has an outcome",
        "each exactly once, the one its category demands",
        "no valid input dead-lettered or rejected",
        "anomaly log holds the stray replies only",
        "every valid order reached its expected status",
        "no order exists that only hostile input named",
        "entitlement balance exact",
        "intruder has no balance",
        "service never crashed or restarted",
        "service drained on SIGTERM",
        "consumer groups caught up (lag 0)",
    )
