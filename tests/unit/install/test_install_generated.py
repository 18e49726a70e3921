"""The install artefacts agree with the code they derive from, without a cluster or Helm.

``workerpool_operator.install`` renders RBAC from ``workerpool_operator.rbac`` (``make
generate`` writes it with the CRD copy into ``manifests/install``); the chart and the kustomize
install also name the operator's environment variables and default worker image, whose source
is ``OperatorSettings``. These tests fail when any of them drifts (fix: ``make generate``, or
the template named).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from workerpool_operator import crd, install, rbac, settings

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "workerpool-operator"


def _template_bodies(text: str) -> dict[str, Any]:
    """Each ``define`` block of _rbac_rules.tpl, parsed as YAML."""
    blocks = re.findall(r'\{\{- define "([^"]+)" \}\}\n(.*?)\{\{- end \}\}', text, re.S)
    return {name: yaml.safe_load(body) for name, body in blocks}


def test_chart_rules_are_the_rbac_module() -> None:
    bodies = _template_bodies((CHART / "templates" / "_rbac_rules.tpl").read_text())
    for attribute, template in install.RULE_LISTS.items():
        assert bodies[template] == getattr(rbac, attribute), template


def test_install_cluster_role_is_the_rbac_module() -> None:
    docs = list(yaml.safe_load_all((ROOT / "manifests" / "install" / "rbac.yaml").read_text()))
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    assert role["rules"] == rbac.RULES


def test_every_rule_says_why() -> None:
    for name, rules in install.read_rules().items():
        for rule in rules:
            assert rule.why, (
                f"{name}: rule {rule.body} has no comment saying which behaviour needs it"
            )


def _env_names(text: str) -> set[str]:
    return set(re.findall(r"\b(WORKERPOOL_OPERATOR_[A-Z_]+)\b", text))


@pytest.mark.parametrize(
    "path",
    [CHART / "templates" / "deployment.yaml", ROOT / "manifests" / "install" / "deployment.yaml"],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_operator_env_names_come_from_the_settings_model(path: Path) -> None:
    known = {
        f"WORKERPOOL_OPERATOR_{name.upper()}" for name in settings.OperatorSettings.model_fields
    }
    used = _env_names(path.read_text())
    assert used, f"{path.name} sets no operator variables"
    assert used <= known, f"unknown operator variables {sorted(used - known)}"


def test_default_worker_image_matches_the_operator_default() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    tag = values["workerImage"]["tag"] or version
    assert f"{values['workerImage']['repository']}:{tag}" == settings.DEFAULT_WORKER_IMAGE
    install = (ROOT / "manifests" / "install" / "deployment.yaml").read_text()
    assert f'value: "{settings.DEFAULT_WORKER_IMAGE}"' in install


def test_values_match_their_schema() -> None:
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load((CHART / "values.yaml").read_text()), schema)


def test_kustomize_install_ships_the_generated_crd() -> None:
    kustomization = yaml.safe_load((ROOT / "manifests/install/kustomization.yaml").read_text())
    assert crd.CRD_FILE_NAME in kustomization["resources"]
