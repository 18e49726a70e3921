"""Generated artefacts are current (the one generator's --check), structural, and agree with
the samples and RBAC."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from workerpool_operator import crd, rbac
from workerpool_operator.api import WorkerPool

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = sorted((ROOT / "manifests" / "samples").glob("*.yaml"))


def test_generated_files_are_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.items():
            found.extend(_walk(value, f"{path}.{key}"))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(_walk(value, f"{path}[{index}]"))
    return found


def test_schema_is_structural() -> None:
    schema = crd.openapi_schema()
    for path, node in _walk(schema):
        if (
            path.endswith(".default")
            or ".default." in path
            or path.endswith("x-kubernetes-validations")
        ):
            continue
        assert "$ref" not in node and "$defs" not in node, path
        assert "title" not in node, path
        assert not ("properties" in node and "additionalProperties" in node), path
        for combinator in ("anyOf", "oneOf", "allOf"):
            for option in node.get(combinator, []):
                forbidden = {"description", "default", "nullable", "additionalProperties"}
                assert not forbidden & set(option), f"{path}.{combinator}"
        is_schema = any(k in node for k in ("type", "properties", "items", "anyOf"))
        if is_schema and not path.endswith(".properties"):
            assert "type" in node or node.get("x-kubernetes-int-or-string"), path


def test_scale_subresource_and_printer_columns() -> None:
    version = crd.build_crd()["spec"]["versions"][0]
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicaCount",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    assert "status" in version["subresources"]
    default_columns = [
        c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")
    ]
    assert default_columns == ["Desired", "Ready", "Queue", "In-Flight", "Min", "Max", "Age"]


def test_min_max_rule_and_conditions_map() -> None:
    spec = crd.openapi_schema()["properties"]["spec"]
    rules = [r["rule"] for r in spec["properties"]["autoscaling"]["x-kubernetes-validations"]]
    assert any(rule.endswith("self.minReplicas <= self.maxReplicas") for rule in rules)
    conditions = crd.openapi_schema()["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]


def test_every_number_in_the_spec_is_bounded() -> None:
    spec = crd.openapi_schema()["properties"]["spec"]
    for path, node in _walk(spec):
        if ".anyOf[" in path:  # quantity alternatives: bounded by their pattern
            continue
        if node.get("type") in ("integer", "number"):
            assert "minimum" in node and "maximum" in node, path


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_samples_are_valid_pools(sample: Path) -> None:
    pools = [
        doc
        for doc in yaml.safe_load_all(sample.read_text())
        if doc and doc.get("kind") == "WorkerPool"
    ]
    assert pools, f"{sample.name} has no WorkerPool"
    schema = crd.openapi_schema()
    for body in pools:
        WorkerPool.model_validate({**body, "metadata": {**body["metadata"], "uid": "u"}})
        jsonschema.validate(body, schema)


def test_rbac_never_lists_watches_or_writes_secrets() -> None:
    for rule in rbac.RULES + rbac.NAMESPACE_PATTERN_RULES + rbac.PEERING_RULES:
        if "secrets" in rule["resources"]:
            assert rule["verbs"] == ["get"]
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]


def test_crd_file_is_valid_yaml_with_the_expected_names() -> None:
    document = yaml.safe_load((ROOT / "crds" / crd.CRD_FILE_NAME).read_text())
    assert document["metadata"]["name"] == "workerpools.controlplane.itlusions.com"
    assert document["spec"]["names"]["shortNames"] == ["wp"]
