"""The portal's server-side drawings: escaped labels, sane output for empty and zero data."""

import json

from service.api.portal.charts import Step, bar_chart, line_chart, timeline
from service.api.portal.figures import catalog


def test_the_timeline_escapes_what_the_events_say() -> None:
    drawn = timeline([Step(1, "Pending", "2026-12-02T06:00:00Z", '<script>alert("x")</script>')])
    assert "<script>" not in drawn and "&lt;script&gt;" in drawn
    assert 'aria-label="Timeline: 1. Pending"' in drawn


def test_one_dot_per_event_in_sequence() -> None:
    steps = [Step(n, name, f"2026-12-02T06:00:0{n}Z", None) for n, name in enumerate(["Pending", "Used"], 1)]
    drawn = timeline(steps)
    assert drawn.count("<circle") == 2 and drawn.index(">Pending<") < drawn.index(">Used<")


def test_charts_draw_zeros_and_nothing_without_dividing_by_zero() -> None:
    assert "<rect" in bar_chart("lag", [("group", 0.0)])
    assert "<polyline" not in line_chart("rate", [])
    assert "<polyline" in line_chart("rate", [("06:00:00", 0.0), ("06:00:05", 2.5)])


def test_each_catalog_example_has_every_required_field_of_its_schema() -> None:
    for entry in catalog():
        schema, example = json.loads(entry.schema), json.loads(entry.example)
        assert set(schema["required"]) <= set(example), entry.event_type
