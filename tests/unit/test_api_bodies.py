"""Ambiguous JSON found wherever it is in a body, and nothing else taken for it."""

import pytest

from service.api.bodies import ambiguity


@pytest.mark.parametrize(
    ("body", "location", "kind"),
    [
        (b'{"client_id": "a", "client_id": "b"}', ["body", "client_id"], "duplicate_key"),
        (b'{"a": {"b": [1, {"c": 1, "c": 1}]}}', ["body", "a", "b", 1, "c"], "duplicate_key"),
        (b'[{"x": 1}, {"x": 1, "x": 2}]', ["body", 1, "x"], "duplicate_key"),
        (b'{"name": "\\ud800"}', ["body", "name"], "string_unicode"),
        (b'{"\\udfff": 1}', ["body"], "string_unicode"),
    ],
    ids=["top-level", "nested", "in-a-list", "unpaired-surrogate", "surrogate-key"],
)
def test_ambiguous_json_is_located(body: bytes, location: list[object], kind: str) -> None:
    found = ambiguity(body)
    assert found is not None and (found[0], found[2]) == (location, kind)


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": 1, "b": {"a": 1}}',  # the same key in two objects is fine
        b'{"name": "\\ud83d\\ude00 \xc3\xa9"}',  # a surrogate pair and UTF-8 are Unicode
        b"not json",
        b'{"a": 1',
        b"\xff\xfe",
        b"[" * 100_000 + b"]" * 100_000,  # too deep for the parser: left to the route's own answer
        b"[" * 900 + b"]" * 900,  # deep but parseable: walked without recursion
    ],
)
def test_unambiguous_or_unreadable_json_is_left_alone(body: bytes) -> None:
    assert ambiguity(body) is None
