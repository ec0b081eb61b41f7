"""deploy/grafana/hookyard.json and deploy/prometheus/alerts.yml only use metrics Hookyard exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

import app.core.metrics  # noqa: F401  (registers every metric)

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "hookyard.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
HOOKYARD_NAME = re.compile(r"\bhookyard_[a-z0-9_]+")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",),
            "summary": ("", "_count", "_sum")}


def exported_names() -> set[str]:
    """The series names the code exports (a counter `x` as x_total, a histogram as x_bucket/_count/_sum)."""
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("hookyard_"):
            names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return names


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    assert {i["name"] for i in dashboard["__inputs"]} == {"DS_PROMETHEUS"}
    exprs = []
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        for target in panel["targets"]:
            exprs.append(target["expr"])
    return exprs


def alert_expressions() -> list[str]:
    yaml = pytest.importorskip("yaml")
    rules = [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
    assert all(rule.get("alert") and rule.get("expr") for rule in rules)
    return [str(rule["expr"]) for rule in rules]


def test_the_exported_names_include_every_documented_metric() -> None:
    names = exported_names()
    for name in ("hookyard_deliveries_created_total", "hookyard_delivery_attempts_total",
                 "hookyard_delivery_attempt_duration_seconds_bucket", "hookyard_delivery_latency_seconds_bucket",
                 "hookyard_queue_depth", "hookyard_queue_oldest_job_age_seconds", "hookyard_deliveries_retrying",
                 "hookyard_deliveries_held", "hookyard_integrations",
                 "hookyard_graphql_operation_duration_seconds_count", "hookyard_live_subscribers",
                 "hookyard_live_slow_subscribers_dropped_total"):
        assert name in names


def test_the_dashboard_uses_only_exported_metrics() -> None:
    exprs = dashboard_expressions()
    used = {name for expr in exprs for name in HOOKYARD_NAME.findall(expr)}
    assert used - exported_names() == set()
    # Every panel the README promises is there.
    for name in ("hookyard_deliveries_created_total", "hookyard_delivery_attempts_total",
                 "hookyard_delivery_attempt_duration_seconds_bucket", "hookyard_delivery_latency_seconds_bucket",
                 "hookyard_queue_depth", "hookyard_queue_oldest_job_age_seconds", "hookyard_deliveries_retrying",
                 "hookyard_deliveries_held", "hookyard_integrations",
                 "hookyard_graphql_operation_duration_seconds_bucket", "hookyard_live_subscribers"):
        assert name in used, name


def test_the_alert_rules_use_only_exported_metrics() -> None:
    exprs = alert_expressions()
    used = {name for expr in exprs for name in HOOKYARD_NAME.findall(expr)}
    assert used and used - exported_names() == set()
    assert any('up{job="hookyard-worker"}' in expr for expr in exprs)
