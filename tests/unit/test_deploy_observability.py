"""deploy/grafana and deploy/prometheus agree with the code and the docs: the dashboard and the alert rules
query only metrics that exist (service/metrics.py, or the named exporters), the dashboard graphs every
metric of the processes, and the rules are exactly the alerts docs/operations.md names, at its severities.

Neither Grafana nor Prometheus runs here, so the checks are static, and `promtool check rules` and the
rules' unit tests (`promtool test rules`) run with the promtool `make test` installs.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "orders-dashboard.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
ALERT_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yaml"
OPERATIONS = ROOT / "docs" / "operations.md"
METRICS = ROOT / "service" / "metrics.py"

EXPORTED_ELSEWHERE = {
    "up",  # Prometheus itself, per scrape target
    "kafka_consumergroup_lag",  # kafka_exporter
    "kafka_consumergroup_current_offset",
    "redis_memory_used_bytes",  # redis_exporter
    "redis_memory_max_bytes",
}
"""Series the processes do not export, which the docs say to read from Kafka's and Redis' monitoring."""

SEVERITIES = {"page", "warn", "ticket"}

PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "offset", "bool", "rate", "irate", "increase", "delta", "deriv",
    "histogram_quantile", "le",
}  # fmt: skip
SAMPLE_SUFFIXES = {"Counter": ("_total",), "Gauge": ("",), "Histogram": ("_bucket", "_sum", "_count")}


def defined_series() -> set[str]:
    """Every series name the processes expose, read from service/metrics.py's declarations."""
    source = METRICS.read_text(encoding="utf-8")
    declared = re.findall(r"\b(Counter|Gauge|Histogram)\(\s*\"([a-z_:][a-z0-9_:]*)\"", source)
    assert len(declared) >= 10, declared
    series = set()
    for kind, name in declared:
        base = name.removesuffix("_total") if kind == "Counter" else name
        series |= {base + suffix for suffix in SAMPLE_SUFFIXES[kind]}
    return series


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: strings, label matchers, grouping labels, range and offset
    durations and function names taken out."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\boffset\s+\w+", " ", expr)
    expr = re.sub(r"\$\w+", " ", expr)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        name = match.group()
        followed = expr[match.end() :].lstrip()
        if name in PROMQL_WORDS or followed.startswith("(") or re.fullmatch(r"\d.*", name):
            continue
        names.add(name)
    return names


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    (group,) = loaded["groups"]
    found: list[dict[str, Any]] = group["rules"]
    return found


def documented_alerts() -> dict[str, set[str]]:
    """The alerts table of docs/operations.md: each alert's name in rule form (`Input stalled` →
    `InputStalled`) and the severities its Severity column names."""
    section = OPERATIONS.read_text(encoding="utf-8").split("\n## Alerts\n", 1)[1].split("\n## ", 1)[0]
    alerts: dict[str, set[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if len(cells) != 4 or cells[0] in ("Alert", "") or set(cells[0]) <= {"-"}:
            continue
        name = "".join(word[:1].upper() + word[1:] for word in cells[0].split())
        alerts[name] = set(re.findall(r"\b(page|warn|ticket)\b", cells[2]))
    return alerts


# --- the metric-name reader itself ---------------------------------------------------------------------


def test_metric_names_are_read_out_of_promql() -> None:
    expr = (
        'sum by (kind) (rate(orders_inputs_applied_total{kind="reply", x=~"a|b"}[5m])) / '
        "histogram_quantile(0.95, sum by (le) (rate(orders_webhook_attempt_seconds_bucket[$__interval])))"
        " - max(up offset 15m) > 0.01"
    )
    assert metric_names(expr) == {
        "orders_inputs_applied_total",
        "orders_webhook_attempt_seconds_bucket",
        "up",
    }
    assert "orders_webhook_attempt_seconds_bucket" in defined_series()
    assert "orders_webhook_attempt_seconds" not in defined_series()  # a histogram has no such series


# --- the dashboard -------------------------------------------------------------------------------------


def test_dashboard_is_grafana_json_with_a_prometheus_datasource_variable() -> None:
    board = dashboard()
    assert board["uid"] and board["title"] and isinstance(board["schemaVersion"], int)
    assert [v["name"] for v in board["templating"]["list"] if v["type"] == "datasource"] == ["datasource"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in board["panels"]:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]) and panel["gridPos"]["x"] + panel["gridPos"][
            "w"
        ] <= 24
        if panel["type"] != "row":
            assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}", panel["title"]
            refs = [t["refId"] for t in panel["targets"]]
            assert len(refs) == len(set(refs)), panel["title"]


def test_dashboard_queries_only_metrics_that_exist() -> None:
    known = defined_series() | EXPORTED_ELSEWHERE
    for expr in dashboard_exprs():
        assert metric_names(expr), expr
        assert metric_names(expr) <= known, f"{expr}: {sorted(metric_names(expr) - known)}"


def test_dashboard_graphs_every_metric_of_the_processes() -> None:
    graphed = {name for expr in dashboard_exprs() for name in metric_names(expr)}
    declared = {re.sub(r"_(bucket|sum|count)$", "", name) for name in defined_series()}
    covered = {re.sub(r"_(bucket|sum|count)$", "", name) for name in graphed}
    assert declared <= covered, sorted(declared - covered)


# --- the alert rules -----------------------------------------------------------------------------------


def test_alert_rules_are_exactly_the_documented_alerts_at_their_severities() -> None:
    documented = documented_alerts()
    assert len(documented) >= 10 and "InputStalled" in documented
    by_alert: dict[str, set[str]] = {}
    for rule in rules():
        by_alert.setdefault(rule["alert"], set()).add(rule["labels"]["severity"])
    assert set(by_alert) == set(documented)
    for name, severities in documented.items():
        assert severities and by_alert[name] == severities, name


def test_alert_rules_are_well_formed_and_query_only_metrics_that_exist() -> None:
    known = defined_series() | EXPORTED_ELSEWHERE
    anchors = {
        "#" + re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", OPERATIONS.read_text(encoding="utf-8"), re.M)
    }
    for rule in rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "0s")), rule["alert"]
        names = metric_names(rule["expr"])
        assert names and names <= known, f"{rule['alert']}: {sorted(names - known)}"
        assert rule["annotations"]["summary"]
        page, anchor = rule["annotations"]["runbook"].split("#")
        assert page == "docs/operations.md" and f"#{anchor}" in anchors, rule["alert"]


def test_every_alert_has_a_rule_unit_test() -> None:
    """deploy/prometheus/alerts.test.yaml (for `promtool test rules`) reads alerts.yaml and tests alerts
    that exist; most of them, each firing and some staying quiet."""
    tests = yaml.safe_load(ALERT_TESTS.read_text(encoding="utf-8"))
    assert tests["rule_files"] == [ALERTS.name]
    tested = {case["alertname"] for test in tests["tests"] for case in test["alert_rule_test"]}
    alerts = {rule["alert"] for rule in rules()}
    assert tested <= alerts and len(tested) >= len(alerts) // 2, sorted(alerts - tested)


PROMTOOL = shutil.which(
    "promtool", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
)
"""`make test` puts promtool in .venv/bin (taken from Debian's prometheus package); elsewhere, from PATH."""


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (`make test` installs it)")
@pytest.mark.parametrize("command", ["check", "test"])
def test_promtool_accepts_the_rules_and_their_unit_tests(command: str) -> None:
    """`promtool check rules` parses every expression; `promtool test rules` evaluates them on series."""
    target = ALERTS if command == "check" else ALERT_TESTS
    result = subprocess.run(
        [str(PROMTOOL), command, "rules", str(target)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
