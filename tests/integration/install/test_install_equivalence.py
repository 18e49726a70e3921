"""``helm template`` (default values) and ``kubectl kustomize manifests/install`` agree.

The kustomize install promises to be the chart's defaults without Helm. Both are rendered
here and compared object by object, in full, after removing what only Helm adds (its
``helm.sh/chart`` and ``managed-by`` labels) and the Namespace object (Helm's
``--create-namespace`` makes it instead). A change to one and not the other fails here.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from itl_harness import stack

pytestmark = pytest.mark.integration

HELM_ONLY_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")
Key = tuple[str, str, str, str]


def _normalise(doc: dict[str, Any]) -> dict[str, Any]:
    labels = doc.get("metadata", {}).get("labels") or {}
    for label in HELM_ONLY_LABELS:
        labels.pop(label, None)
    if "labels" in doc.get("metadata", {}) and not labels:
        del doc["metadata"]["labels"]
    return doc


def _by_key(docs: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    result: dict[Key, dict[str, Any]] = {}
    for doc in docs:
        meta = doc["metadata"]
        key = (doc["apiVersion"], doc["kind"], meta.get("namespace", ""), meta["name"])
        assert key not in result, f"duplicate object {key}"
        result[key] = _normalise(doc)
    return result


@pytest.fixture(scope="module")
def rendered(helm_bin: Path, kubectl_bin: Path) -> tuple[dict[Key, Any], dict[Key, Any]]:
    chart = stack.helm_template(helm_bin)
    kustomized = subprocess.run(
        [str(kubectl_bin), "kustomize", str(stack.REPO / "manifests" / "install")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    docs = [d for d in yaml.safe_load_all(kustomized) if d]
    return _by_key(chart), _by_key(docs)


def test_same_objects(rendered: tuple[dict[Key, Any], dict[Key, Any]]) -> None:
    chart, kustomize = rendered
    namespaces = [k for k in kustomize if k[1] == "Namespace"]
    assert namespaces == [("v1", "Namespace", "", "workerpool-system")]
    assert sorted(chart) == sorted(k for k in kustomize if k[1] != "Namespace")


def test_same_content(rendered: tuple[dict[Key, Any], dict[Key, Any]]) -> None:
    chart, kustomize = rendered
    for key, body in chart.items():
        assert kustomize.get(key) == body, f"{key} differs between the chart and manifests/install"


def test_kustomize_namespace_enforces_restricted(
    rendered: tuple[dict[Key, Any], dict[Key, Any]],
) -> None:
    _, kustomize = rendered
    namespace = kustomize[("v1", "Namespace", "", "workerpool-system")]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_chart_crd_is_the_generated_one(
    rendered: tuple[dict[Key, Any], dict[Key, Any]],
) -> None:
    """The CRD Helm installs is the generated file (the byte-level check is a unit test)."""
    chart, _ = rendered
    crds = [body for key, body in chart.items() if key[1] == "CustomResourceDefinition"]
    generated = yaml.safe_load(
        (stack.REPO / "crds" / "workerpools.controlplane.itlusions.com.yaml").read_text()
    )
    assert crds == [generated]
