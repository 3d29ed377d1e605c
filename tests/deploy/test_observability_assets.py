"""deploy/prometheus and deploy/grafana: valid for Prometheus, and only real metric names.

The alert rules and the dashboard are code that runs elsewhere, so they are checked
here: ``promtool`` validates the scrape config and the rules and runs alert unit tests
on synthetic series; every ``contentstream_*`` name in a rule or a dashboard query must
be one a worker exports.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import Counter, Histogram

from streams.operations.metrics import WorkerMetrics

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
SCRAPE_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "contentstream.json"

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (make install-system installs prometheus)"
)
METRIC_NAME = re.compile(r"\bcontentstream_[a-zA-Z0-9_:]+")


def exported_names() -> set[str]:
    """Every series name a worker's /metrics can carry, suffixes included."""
    metrics = WorkerMetrics()
    names: set[str] = set()
    for collector in vars(metrics).values():
        if isinstance(collector, Histogram):
            base = collector._name
            names |= {f"{base}_bucket", f"{base}_sum", f"{base}_count", f"{base}_created"}
        elif isinstance(collector, Counter):
            base = collector._name
            names |= {f"{base}_total", f"{base}_created"}
    for family in metrics.registry.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=60, check=False
    )


def dashboard_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from dashboard_panels(panel.get("panels", []))


def dashboard_exprs() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [
        (panel.get("title", "?"), target["expr"])
        for panel in dashboard_panels(dashboard["panels"])
        for target in panel.get("targets", [])
        if target.get("expr")
    ]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if isinstance(query, str) and query:
            exprs.append((f"variable {variable['name']}", query))
    return exprs


def as_plain_promql(expr: str) -> str:
    """Grafana's variables replaced by values Prometheus accepts."""
    return (
        expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
        .replace("$instance", ".*")
    )


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_exported_names_cover_the_lag_metrics() -> None:
    names = exported_names()
    for name in (
        "contentstream_consumer_lag_events",
        "contentstream_consumer_lag_seconds",
        "contentstream_consumer_log_end_offset",
        "contentstream_committed_offset",
        "contentstream_last_commit_timestamp_seconds",
        "contentstream_partition_stuck",
        "contentstream_end_to_end_latency_seconds_bucket",
        "contentstream_dead_letters_total",
    ):
        assert name in names


def test_dashboard_queries_use_only_exported_metrics() -> None:
    exported = exported_names()
    exprs = dashboard_exprs()
    assert len(exprs) >= 20
    for title, expr in exprs:
        used = set(METRIC_NAME.findall(expr))
        assert used or re.search(r"\bup\{", expr), f"{title}: no metric in {expr!r}"
        unknown = used - exported
        assert not unknown, f"panel {title!r} queries metrics no worker exports: {unknown}"


def test_dashboard_covers_what_operators_need() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "contentstream"
    all_exprs = " ".join(expr for _, expr in dashboard_exprs())
    for needed in (
        "contentstream_events_finished_total",
        "contentstream_consumer_lag_events",
        "contentstream_consumer_lag_seconds",
        "histogram_quantile(0.99, sum by (le) "
        "(rate(contentstream_end_to_end_latency_seconds_bucket",
        "contentstream_stage_duration_seconds_bucket",
        "sum by (code) (rate(contentstream_dead_letters_total",
        "contentstream_dedup_hits_total",
        "contentstream_in_flight_limit",
        "contentstream_event_loop_lag_seconds",
    ):
        assert needed in all_exprs, needed
    # Every panel reads the data source the provisioning defines.
    provisioned = yaml.safe_load(
        (REPO / "deploy/compose/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    uid = provisioned["datasources"][0]["uid"]
    for panel in dashboard_panels(dashboard["panels"]):
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == uid, panel["title"]
    ids = [p["id"] for p in dashboard_panels(dashboard["panels"])]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_alert_rules_use_only_exported_metrics() -> None:
    exported = exported_names()
    rules = alert_rules()
    assert {r["alert"] for r in rules} >= {
        "ContentstreamWorkerDown",
        "ContentstreamNoWorkers",
        "ContentstreamConsumerLagRising",
        "ContentstreamPartitionStuck",
        "ContentstreamNoThroughput",
        "ContentstreamDeadLetterRate",
        "ContentstreamRedisUnavailable",
    }
    for rule in rules:
        unknown = set(METRIC_NAME.findall(rule["expr"])) - exported
        assert not unknown, f"{rule['alert']} uses metrics no worker exports: {unknown}"
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]


@needs_promtool
def test_promtool_accepts_the_scrape_config_and_rules() -> None:
    checked = promtool("check", "config", str(SCRAPE_CONFIG))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "alerts.yml" in checked.stdout  # the rule file was found and checked too
    rules = promtool("check", "rules", str(ALERTS))
    assert rules.returncode == 0, rules.stdout + rules.stderr


@needs_promtool
def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    rules = [
        {"record": f"dashboard:query_{i}", "expr": as_plain_promql(expr)}
        for i, (_, expr) in enumerate(dashboard_exprs())
        if not expr.startswith("label_values(")
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr


# Synthetic series and the alerts they must (and must not) raise. promtool evaluates the
# real rule file; `for:` durations and label sets are part of what is tested.
ALERT_TESTS: dict[str, Any] = {
    "evaluation_interval": "1m",
    "tests": [
        {
            "name": "worker down, then no workers at all",
            "interval": "1m",
            "input_series": [
                {"series": 'up{job="contentstream", instance="w1:6066"}', "values": "0x20"},
            ],
            "alert_rule_test": [
                {"eval_time": "4m", "alertname": "ContentstreamWorkerDown", "exp_alerts": []},
                {
                    "eval_time": "6m",
                    "alertname": "ContentstreamWorkerDown",
                    "exp_alerts": [
                        {
                            "exp_labels": {
                                "severity": "critical",
                                "job": "contentstream",
                                "instance": "w1:6066",
                            }
                        }
                    ],
                },
                {
                    "eval_time": "11m",
                    "alertname": "ContentstreamNoWorkers",
                    "exp_alerts": [{"exp_labels": {"severity": "critical"}}],
                },
            ],
        },
        {
            "name": "lag rising for a long time, on one partition",
            "interval": "1m",
            "input_series": [
                {
                    "series": 'contentstream_consumer_lag_events{job="contentstream", '
                    'instance="w1:6066", topic="content.raw", partition="0"}',
                    "values": "0+50x60",
                },
                {
                    "series": 'contentstream_consumer_lag_events{job="contentstream", '
                    'instance="w2:6066", topic="content.raw", partition="1"}',
                    "values": "5x60",
                },
            ],
            "alert_rule_test": [
                {
                    "eval_time": "10m",
                    "alertname": "ContentstreamConsumerLagRising",
                    "exp_alerts": [],
                },
                {
                    "eval_time": "40m",
                    "alertname": "ContentstreamConsumerLagRising",
                    "exp_alerts": [{"exp_labels": {"severity": "warning", "topic": "content.raw"}}],
                },
            ],
        },
        {
            "name": "steady lag is not rising",
            "interval": "1m",
            "input_series": [
                {
                    "series": 'contentstream_consumer_lag_events{job="contentstream", '
                    'instance="w1:6066", topic="content.raw", partition="0"}',
                    "values": "500x60",
                },
            ],
            "alert_rule_test": [
                {
                    "eval_time": "50m",
                    "alertname": "ContentstreamConsumerLagRising",
                    "exp_alerts": [],
                },
            ],
        },
        {
            "name": "stuck partition",
            "interval": "1m",
            "input_series": [
                {
                    "series": 'contentstream_partition_stuck{job="contentstream", '
                    'instance="w1:6066", topic="content.raw", partition="3"}',
                    "values": "0 0 1 1 1 1",
                },
            ],
            "alert_rule_test": [
                {"eval_time": "2m", "alertname": "ContentstreamPartitionStuck", "exp_alerts": []},
                {
                    "eval_time": "4m",
                    "alertname": "ContentstreamPartitionStuck",
                    "exp_alerts": [
                        {
                            "exp_labels": {
                                "severity": "critical",
                                "topic": "content.raw",
                                "partition": "3",
                            }
                        }
                    ],
                },
            ],
        },
        {
            "name": "no throughput while there is lag",
            "interval": "1m",
            "input_series": [
                {
                    "series": 'contentstream_events_finished_total{job="contentstream", '
                    'instance="w1:6066", outcome="ok"}',
                    "values": "0+60x5 300x30",
                },
                {
                    "series": 'contentstream_consumer_lag_events{job="contentstream", '
                    'instance="w1:6066", topic="content.raw", partition="0"}',
                    "values": "10x35",
                },
            ],
            "alert_rule_test": [
                {"eval_time": "5m", "alertname": "ContentstreamNoThroughput", "exp_alerts": []},
                {
                    "eval_time": "25m",
                    "alertname": "ContentstreamNoThroughput",
                    "exp_alerts": [
                        {"exp_labels": {"severity": "critical", "job": "contentstream"}}
                    ],
                },
            ],
        },
        {
            "name": "dead letters above 5%",
            "interval": "1m",
            "input_series": [
                {
                    "series": 'contentstream_events_finished_total{job="contentstream", '
                    'instance="w1:6066", outcome="ok"}',
                    "values": "0+600x40",
                },
                {
                    "series": 'contentstream_events_finished_total{job="contentstream", '
                    'instance="w1:6066", outcome="dead_lettered"}',
                    "values": "0+60x40",
                },
                {
                    "series": 'contentstream_dead_letters_total{job="contentstream", '
                    'instance="w1:6066", code="INVALID_JSON"}',
                    "values": "0+60x40",
                },
            ],
            "alert_rule_test": [
                {
                    "eval_time": "30m",
                    "alertname": "ContentstreamDeadLetterRate",
                    "exp_alerts": [{"exp_labels": {"severity": "warning", "job": "contentstream"}}],
                },
            ],
        },
        {
            "name": "Redis unavailable",
            "interval": "1m",
            "input_series": [
                {
                    "series": 'contentstream_dedup_unavailable_total{job="contentstream", '
                    'instance="w1:6066"}',
                    "values": "0+30x20",
                },
            ],
            "alert_rule_test": [
                {
                    "eval_time": "15m",
                    "alertname": "ContentstreamRedisUnavailable",
                    "exp_alerts": [{"exp_labels": {"severity": "warning", "job": "contentstream"}}],
                },
            ],
        },
    ],
}


@needs_promtool
def test_alerts_fire_on_synthetic_series(tmp_path: Path) -> None:
    # promtool compares annotations verbatim; these tests are about when alerts fire and
    # with which labels (`promtool check rules` has already parsed the templates).
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    rules_path = tmp_path / "alerts_without_annotations.yml"
    rules_path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    spec = dict(ALERT_TESTS, rule_files=[str(rules_path)])
    path = tmp_path / "alerts_test.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    result = promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
