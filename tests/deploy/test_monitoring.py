"""The Grafana dashboard, the Prometheus alerting rules and config, and the way
the chart and Compose wire them: checked by promtool (from Debian's prometheus
package, installed when missing), against the metric catalogue and against
docs/operations.md, offline."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from deploy_helpers import CHART, DEPLOY, REPO, of_kind, promtool, render
from test_deploy_static import KUBERNETES_VERSION, compose_config

from paymesh.platform import metrics
from tests.promql import (
    PROMETHEUS_SERIES,
    dashboard,
    dashboard_exprs,
    metric_names,
    named_metrics,
    rules,
    series_names,
)

PROMETHEUS = DEPLOY / "prometheus"
GRAFANA = DEPLOY / "grafana"
OPERATIONS = REPO / "docs" / "operations.md"
SERVICES = ("accounts", "payments", "risk", "webhooks", "gateway")
# The alerts the issue asks for, by what they watch.
REQUIRED_ALERTS = {
    "PaymeshErrorRatioHigh", "PaymeshLatencyP99High", "PaymeshConsumerLagHigh",
    "PaymeshOutboxStuck", "PaymeshSagaStuck", "PaymeshWebhookEndpointsDisabled",
    "PaymeshLedgerVerifyFailed", "PaymeshNotReady", "PaymeshTargetDown",
}  # fmt: skip
MONITORING_ON = {
    "monitoring": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "prometheusRule": {"enabled": True},
        "grafanaDashboard": {"enabled": True},
    }
}
# Custom resources: kubernetes-validate ships only the built-in kinds' schemas.
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}


def run_promtool(*args: str, cwd: Path = REPO) -> str:
    result = subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


# --- Prometheus --------------------------------------------------------------


def test_promtool_accepts_the_alerting_rules() -> None:
    out = run_promtool("check", "rules", str(PROMETHEUS / "alerts.yaml"))
    assert f"SUCCESS: {len(rules())} rules found" in out


def test_promtool_accepts_the_prometheus_config_and_the_rules_it_loads() -> None:
    out = run_promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert "SUCCESS: 1 rule files found" in out
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "paymesh"]
    # The series' own service label wins over any target label of that name.
    assert job["honor_labels"] is True
    (static,) = job["static_configs"]
    assert sorted(static["targets"]) == sorted(f"{s}:9100" for s in SERVICES)


def test_the_alerts_unit_tests_pass_under_promtool() -> None:
    out = run_promtool("test", "rules", "alerts_test.yaml", cwd=PROMETHEUS)
    assert "SUCCESS" in out
    tested = yaml.safe_load((PROMETHEUS / "alerts_test.yaml").read_text())
    cases = [c for t in tested["tests"] for c in t["alert_rule_test"]]
    # At least two alerts, each seen both firing and silent.
    firing = {c["alertname"] for c in cases if c["exp_alerts"]}
    silent = {c["alertname"] for c in cases if not c["exp_alerts"]}
    assert len(firing & silent) >= 2, (firing, silent)


def test_promtool_rejects_a_broken_rule_so_the_checks_above_mean_something(
    tmp_path: Path,
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: rate(x[5m]\n"
    )
    result = subprocess.run(
        [promtool(), "check", "rules", str(broken)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_alert_has_a_wait_a_severity_a_summary_and_a_runbook_that_exists() -> None:
    docs = OPERATIONS.read_text()
    anchors = {github_anchor(h) for h in re.findall(r"^#{1,6} (.+)$", docs, flags=re.M)}
    alerts = [r for r in rules() if "alert" in r]
    assert {a["alert"] for a in alerts} >= REQUIRED_ALERTS
    for alert in alerts:
        name = alert["alert"]
        assert re.fullmatch(r"\d+[smh]", alert["for"]), name
        assert alert["labels"]["severity"] in {"critical", "warning"}, name
        assert alert["annotations"]["summary"].strip(), name
        assert alert["annotations"]["description"].strip(), name
        path, _, anchor = alert["annotations"]["runbook"].partition("#")
        assert path == "docs/operations.md", name
        assert anchor == name.lower(), name
        assert anchor in anchors, f"{name}: no heading for #{anchor} in docs/operations.md"
    ledger = next(a for a in alerts if a["alert"] == "PaymeshLedgerVerifyFailed")
    assert ledger["expr"].strip() == "paymesh_ledger_verify_problems > 0"
    assert next(a for a in alerts if a["alert"] == "PaymeshNotReady")["expr"].strip() == (
        "paymesh_ready == 0"
    )


# --- the dashboard -----------------------------------------------------------


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    # Grafana's variables replaced by what they stand for, then promtool parses
    # each query as a recording rule.
    exprs = [
        e.replace("$__rate_interval", "5m").replace("$service", ".*")
        for where, e in dashboard_exprs().items()
        if where.startswith("panel")
    ]
    assert not any("$" in e for e in exprs), [e for e in exprs if "$" in e]
    file = tmp_path / "dashboard-queries.yaml"
    records = [{"record": f"dashboard:query{i}", "expr": e} for i, e in enumerate(exprs)]
    file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    out = run_promtool("check", "rules", str(file))
    assert f"SUCCESS: {len(exprs)} rules found" in out


def test_the_dashboard_has_its_variables_and_every_row() -> None:
    board = dashboard()
    assert board["schemaVersion"] >= 39
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["service"]["datasource"]["uid"] == "${datasource}"
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert rows == [
        "Golden signals", "Payments funnel", "Saga backlog", "Outbox and consumers", "Ledger",
        "Risk", "Webhooks", "Gateway protections", "Database", "Settlement and reconciliation",
    ]  # fmt: skip
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            # Filtered by the service variable, except what has no service label.
            names = metric_names(target["expr"])
            if not names & {"up", "paymesh_kafka_dead_letters_total"}:
                assert 'service=~"$service"' in target["expr"], (panel["title"], target)


def catalogue_series() -> set[str]:
    """Every series name the metric catalogue (paymesh.platform.metrics) exposes."""
    names: set[str] = set()
    for attr in metrics.__all__:
        for family in getattr(metrics, attr).describe():
            names |= series_names(family.name, family.type)
    return names


def test_every_metric_a_dashboard_or_rule_names_is_in_the_catalogue() -> None:
    known = catalogue_series() | PROMETHEUS_SERIES
    unknown = {name: sorted(where) for name, where in named_metrics().items() if name not in known}
    assert not unknown, unknown


def test_every_metric_of_the_catalogue_is_on_the_dashboard() -> None:
    on_board = {n for e in dashboard_exprs().values() for n in metric_names(e)}
    for attr in metrics.__all__:
        (family,) = getattr(metrics, attr).describe()
        assert series_names(family.name, family.type) & on_board, family.name


def test_the_name_check_sees_a_misspelt_metric() -> None:
    known = catalogue_series()
    assert metric_names('sum(rate(paymesh_payment_completed_total{status="x"}[5m]))') == {
        "paymesh_payment_completed_total"
    }
    assert "paymesh_payment_completed_total" not in known
    # A histogram is scraped as its _bucket/_sum/_count only, never its bare name.
    assert "paymesh_http_server_request_duration_seconds" not in known
    assert "paymesh_http_server_request_duration_seconds_bucket" in known


# --- Grafana provisioning and Compose -----------------------------------------


def test_compose_runs_prometheus_and_grafana_on_the_checked_files() -> None:
    services = compose_config()["services"]
    prometheus, grafana = services["prometheus"], services["grafana"]
    for svc in (prometheus, grafana):
        image, _, tag = svc["image"].rpartition(":")
        assert image, svc["image"]
        assert tag not in ("", "latest"), svc["image"]
    mounts = {
        v["target"]: Path(v["source"]) for s in (prometheus, grafana) for v in s["volumes"]
        if v["type"] == "bind"
    }  # fmt: skip
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert mounts["/etc/prometheus/prometheus.yml"] == PROMETHEUS / "prometheus.yml"
    # prometheus.yml names its rules relative to itself: they sit side by side.
    assert mounts["/etc/prometheus/alerts.yaml"] == PROMETHEUS / "alerts.yaml"
    assert mounts["/etc/grafana/provisioning"] == GRAFANA / "provisioning"
    assert all(m.exists() for m in mounts.values()), mounts
    # Grafana's dashboard provider reads the folder the dashboard is mounted in.
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/paymesh.yaml").read_text())
    (entry,) = provider["providers"]
    board = [t for t, src in mounts.items() if src == GRAFANA / "paymesh.json"]
    assert board == [f"{entry['options']['path']}/paymesh.json"]
    # ... and its data source is the Compose Prometheus.
    sources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yaml").read_text())
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == f"http://prometheus:{prometheus['ports'][0]['target']}"
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"


# --- the chart -----------------------------------------------------------------


@pytest.fixture(scope="module")
def monitored() -> list[dict[str, Any]]:
    """The chart with every monitoring object on."""
    return render(MONITORING_ON)


def test_monitoring_objects_are_off_by_default() -> None:
    kinds = {o["kind"] for o in render(None)}
    assert not kinds & OPERATOR_KINDS
    names = {o["metadata"]["name"] for o in render(None)}
    assert "paymesh-grafana-dashboard" not in names
    assert "paymesh-metrics" not in names


def test_the_chart_files_are_copies_of_the_deploy_files() -> None:
    assert (CHART / "files" / "alerts.yaml").read_text() == (PROMETHEUS / "alerts.yaml").read_text()
    assert (CHART / "files" / "paymesh.json").read_text() == (GRAFANA / "paymesh.json").read_text()


def test_the_prometheus_rule_renders_the_same_rules_as_deploy_prometheus(
    monitored: list[dict[str, Any]], tmp_path: Path
) -> None:
    (rule,) = of_kind(monitored, "PrometheusRule")
    groups = yaml.safe_load((PROMETHEUS / "alerts.yaml").read_text())["groups"]
    assert rule["spec"]["groups"] == groups
    # And what the operator hands Prometheus passes promtool.
    file = tmp_path / "rendered.yaml"
    file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    run_promtool("check", "rules", str(file))


def test_the_service_monitor_scrapes_every_service_keeping_its_service_label(
    monitored: list[dict[str, Any]],
) -> None:
    (monitor,) = of_kind(monitored, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    spec = monitor["spec"]
    (endpoint,) = spec["endpoints"]
    assert endpoint["port"] == "metrics"
    assert endpoint["path"] == "/metrics"
    assert endpoint["honorLabels"] is True
    selector = spec["selector"]["matchLabels"]
    selected = [
        s for s in of_kind(monitored, "Service")
        if all(s["metadata"]["labels"].get(k) == v for k, v in selector.items())
    ]  # fmt: skip
    assert sorted(s["metadata"]["labels"]["app.kubernetes.io/component"] for s in selected) == (
        sorted(SERVICES)
    )
    # job="paymesh", which PaymeshTargetDown selects.
    assert {s["metadata"]["labels"][spec["jobLabel"]] for s in selected} == {"paymesh"}
    assert (
        'up{job="paymesh"}'
        in next(r for r in rules() if r.get("alert") == "PaymeshTargetDown")["expr"]
    )
    # The default-deny policy lets the scrapers in on the metrics port, nothing more.
    (policy,) = [
        p for p in of_kind(monitored, "NetworkPolicy") if p["metadata"]["name"].endswith("-metrics")
    ]
    (ingress,) = policy["spec"]["ingress"]
    assert ingress["ports"] == [{"port": 9100, "protocol": "TCP"}]
    assert policy["spec"]["egress"] == []


def test_the_dashboard_config_map_is_labelled_for_the_grafana_sidecar(
    monitored: list[dict[str, Any]],
) -> None:
    (config_map,) = [
        c for c in of_kind(monitored, "ConfigMap") if "paymesh.json" in c.get("data", {})
    ]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["paymesh.json"]) == dashboard()


def test_the_chart_with_monitoring_on_passes_helm_lint_and_the_schemas(
    monitored: list[dict[str, Any]],
) -> None:
    import helm_python as helm

    report = helm.lint(
        CHART, MONITORING_ON, strict=True, namespace="paymesh",
        kube_version=f"v{KUBERNETES_VERSION}",
    )  # fmt: skip
    assert not [m for m in report["messages"] if m["severity"] >= 2], report
    assert not report["errors"], report
    seen = set()
    for obj in monitored:
        if obj["apiVersion"] == "monitoring.coreos.com/v1":
            # Its metadata is a Kubernetes ObjectMeta: checked as a ConfigMap's;
            # its spec by the tests above (promtool, the selected Services).
            assert obj["kind"] in OPERATOR_KINDS
            seen.add(obj["kind"])
            obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj["metadata"]}
        for version in (KUBERNETES_VERSION, kubernetes_validate.latest_version()):
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} on {version}: {exc}")
    assert seen == OPERATOR_KINDS


# Its module-scoped fixture (a platform, a rendered chart, a browser) is made once, on one
# worker (`make test` runs pytest-xdist with --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_monitoring")
