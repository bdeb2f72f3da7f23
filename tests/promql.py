"""The PromQL in deploy/ (dashboard and alert rules), and the metric names it refers to."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboard.json"

# Series that Prometheus and the Pushgateway make themselves, not the service.
GENERATED = {
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
    "push_time_seconds",
    "push_failure_time_seconds",
}
KEYWORDS = {
    *("and", "or", "unless", "bool", "offset", "start", "end", "inf", "nan"),
    *("by", "without", "on", "ignoring", "group_left", "group_right"),
}

# Removed in this order: strings first, since they may hold any of the other characters.
_STRING = re.compile(r"\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'|`[^`]*`")
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")  # Grafana's $job, ${job}, $__rate_interval
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")  # [5m], subqueries [1h:1m]
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_NUMBER = re.compile(r"\b\d[\w.]*")  # 0.5, 1e9, 5m (not the 2 in app_v2_total: no \b)
_IDENTIFIER = re.compile(r"[A-Za-z_:][\w:]*")
_LABEL_VALUES = re.compile(r"label_values\((?P<selector>.*),\s*\w+\)\s*$", re.DOTALL)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers that are not functions,
    aggregations, keywords, label names or durations."""
    text = _STRING.sub('""', expr)
    for pattern in (_VARIABLE, _MATCHERS, _RANGE, _GROUPING, _NUMBER):
        text = pattern.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        is_call = text[match.end() :].lstrip().startswith("(")
        if not is_call and match.group() not in KEYWORDS:
            names.add(match.group())
    return names


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def dashboard_queries() -> list[str]:
    """Every panel's PromQL, and the selectors of the `label_values()` variables."""
    board = dashboard()
    queries = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            found = _LABEL_VALUES.match(variable["query"]["query"])
            if found:
                queries.append(found["selector"])
    return queries


def exported_names(exposition: str) -> set[str]:
    """Metric family and sample names in Prometheus text format (so `_total`, `_bucket`...)."""
    names = set()
    for family in text_string_to_metric_families(exposition):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names
