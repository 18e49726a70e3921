"""The chart's dashboard, alert rules and worker PodMonitor: off by default, one value each.

Rendered with ``helm template`` (no cluster). The ConfigMap must carry the dashboard file and
the PrometheusRule the rules file exactly: those files are the single source that the
dashboard and promtool tests check.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from itl_harness import stack

pytestmark = pytest.mark.integration

CHART = stack.REPO / "charts" / "workerpool-operator"
DASHBOARD = CHART / "dashboards" / "workerpools.json"
RULES = CHART / "alerts" / "workerpool.rules.yaml"
ALL_ON = {
    "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "ITL"}},
    "alerts": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "metrics": {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}},
}


def _kinds(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in docs}


def test_nothing_observability_renders_by_default(helm_bin: Path) -> None:
    kinds = _kinds(stack.helm_template(helm_bin, include_crds=False))
    assert not {"PrometheusRule", "PodMonitor", "ServiceMonitor"} & set(kinds)
    assert "ConfigMap" not in kinds


def test_one_value_each_turns_them_on(helm_bin: Path) -> None:
    docs = stack.helm_template(helm_bin, values=ALL_ON, include_crds=False)
    kinds = _kinds(docs)

    dashboard = kinds["ConfigMap"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "ITL"}
    assert json.loads(dashboard["data"]["workerpools.json"]) == json.loads(DASHBOARD.read_text())

    rule = kinds["PrometheusRule"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["spec"] == yaml.safe_load(RULES.read_text())

    pods = kinds["PodMonitor"]["spec"]
    assert pods["selector"]["matchLabels"] == {
        "app.kubernetes.io/managed-by": "workerpool-operator",
        "app.kubernetes.io/component": "worker",
    }
    assert pods["namespaceSelector"] == {"any": True}
    assert pods["podMetricsEndpoints"][0]["port"] == "health"


def test_the_pod_monitor_follows_watched_namespaces(helm_bin: Path) -> None:
    values = {**ALL_ON, "watchNamespaces": ["team-a", "team-b"]}
    kinds = _kinds(stack.helm_template(helm_bin, values=values, include_crds=False))
    assert kinds["PodMonitor"]["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}


def test_the_dashboard_can_go_to_grafanas_namespace(helm_bin: Path) -> None:
    values = {"grafanaDashboard": {"enabled": True, "namespace": "monitoring"}}
    kinds = _kinds(stack.helm_template(helm_bin, values=values, include_crds=False))
    assert kinds["ConfigMap"]["metadata"]["namespace"] == "monitoring"


@pytest.mark.parametrize("values", [{}, ALL_ON], ids=["defaults", "all-on"])
def test_helm_lint_strict(helm_bin: Path, values: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory(prefix="itl-helm-") as tmp:
        path = Path(tmp) / "values.json"
        path.write_text(json.dumps(values))
        done = subprocess.run(
            [str(helm_bin), "lint", "--strict", str(CHART), "--values", str(path)],
            env={**os.environ, "HELM_CACHE_HOME": tmp, "HELM_CONFIG_HOME": tmp},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_unknown_value_is_refused(helm_bin: Path) -> None:
    with pytest.raises(subprocess.CalledProcessError) as refused:
        stack.helm_template(helm_bin, values={"alerts": {"enabled": True, "severity": "x"}})
    assert "severity" in refused.value.stderr
