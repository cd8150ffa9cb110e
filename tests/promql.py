"""What the Grafana dashboard and the alerting rules ask Prometheus for: every
PromQL expression they hold, the metric names in each, and the series names a
metric family exposes (so a check can tell whether a name exists).

The names come from a small tokenizer (no PromQL parser is published for
Python): strings, label matchers, ranges and grouping clauses are removed, then
every identifier that is neither a keyword nor called like a function is a
metric name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "deploy" / "grafana" / "paymesh.json"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yaml"

# Series Prometheus makes itself for every target, not exposed by paymesh.
PROMETHEUS_SERIES = frozenset({"up"})

_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![\w.:$])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "offset", "bool", "by", "without", "on", "ignoring"}
    | {"group_left", "group_right", "inf", "nan", "start", "end", "atan2"}
)
# Grafana's query variable: label_values(metric, label).
_LABEL_VALUES = re.compile(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("{}", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


def _panels(panels: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # a collapsed row holds its panels


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_exprs() -> dict[str, str]:
    """Every PromQL expression of the dashboard, keyed by where it is."""
    board = dashboard()
    exprs = {}
    for panel in _panels(board["panels"]):
        for target in panel.get("targets", []):
            exprs[f"panel {panel['title']!r} target {target['refId']}"] = target["expr"]
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            found = _LABEL_VALUES.match(query)
            exprs[f"variable {var['name']}"] = found.group(1) if found else query
    return exprs


def rules() -> list[dict[str, Any]]:
    """Every rule of deploy/prometheus/alerts.yaml."""
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def rule_exprs() -> dict[str, str]:
    return {f"rule {r.get('alert') or r['record']}": r["expr"] for r in rules()}


def named_metrics() -> dict[str, set[str]]:
    """Where each metric name is used: name -> the places."""
    used: dict[str, set[str]] = {}
    for where, expr in {**dashboard_exprs(), **rule_exprs()}.items():
        names = metric_names(expr)
        assert names, f"{where}: no metric name found in {expr!r}"
        for name in names:
            used.setdefault(name, set()).add(where)
    return used


def series_names(family: str, kind: str) -> set[str]:
    """The series names a metric family is scraped as (a counter's family name has no
    _total; a histogram is only its _bucket, _sum and _count)."""
    if kind == "counter":
        return {f"{family}_total", f"{family}_created"}
    if kind == "histogram":
        return {f"{family}_bucket", f"{family}_sum", f"{family}_count", f"{family}_created"}
    if kind == "summary":
        return {family, f"{family}_sum", f"{family}_count", f"{family}_created"}
    return {family}
