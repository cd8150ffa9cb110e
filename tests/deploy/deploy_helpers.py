"""Shared by the deployment checks: where the artefacts are, the chart rendered.

(A plain module, not a conftest.py: test folders have no __init__ files.)
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.apt import ensure_packages

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CHART = DEPLOY / "helm" / "paymesh"
PRODUCTION_VALUES = DEPLOY / "helm" / "values-production.yaml"
# The chart's values files the checks run with: none (the defaults) and production-like.
VALUES_FILES: dict[str, Path | None] = {"default": None, "production": PRODUCTION_VALUES}
NAMESPACE = "paymesh"


def tool(name: str) -> str:
    """A command-line tool installed in the venv beside the running Python."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise FileNotFoundError(f"{path}: install the dev dependencies (make install)")
    return str(path)


def promtool() -> str:
    """Prometheus's promtool, from Debian's prometheus package, installed with apt when
    missing (CI runs as root on a fresh machine), never skipped."""
    ensure_packages({"promtool": "prometheus"})
    found = shutil.which("promtool")
    assert found, "apt-get install prometheus left no promtool on PATH"
    return found


def load_values(name: str) -> dict[str, Any] | None:
    """The values a check renders with; None for the chart's defaults."""
    path = VALUES_FILES[name]
    return None if path is None else yaml.safe_load(path.read_text())


def render(values: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every Kubernetes object the chart renders (hooks included), as dicts."""
    import helm_python as helm

    with helm.Chart.load(CHART) as chart:
        files = chart.render(values, name="paymesh", namespace=NAMESPACE, is_install=True)
    objects: list[dict[str, Any]] = []
    for path, text in sorted(files.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def pod_specs(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(object name, pod spec) of every workload."""
    return [
        (o["metadata"]["name"], o["spec"]["template"]["spec"])
        for o in objects
        if o["kind"] in {"Deployment", "Job", "StatefulSet", "DaemonSet"}
    ]
