"""The shipped alert rules read exported series and each has a runbook section.

``promtool test rules`` (tests/integration/observability) proves when each alert fires; this
checks what the rules read against the code's registries and that the runbooks exist.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.promql import exported_series, reads
from workerpool_operator import labels

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "charts" / "workerpool-operator" / "alerts" / "workerpool.rules.yaml"
OPERATIONS = ROOT / "docs" / "operations.md"
KUBE_STATE_METRICS = frozenset({"kube_pod_container_status_restarts_total"})
"""The only series the rules read from outside the project: kube-state-metrics'."""


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


RULE_LIST = _rules()


@pytest.mark.parametrize("rule", RULE_LIST, ids=[r["alert"] for r in RULE_LIST])
def test_every_rule_reads_exported_series(rule: dict[str, Any]) -> None:
    problems = reads(rule["expr"]).problems(exported_series(), KUBE_STATE_METRICS)
    assert not problems, f"{rule['alert']}: {'; '.join(problems)}"


@pytest.mark.parametrize("rule", RULE_LIST, ids=[r["alert"] for r in RULE_LIST])
def test_every_rule_has_a_runbook_section(rule: dict[str, Any]) -> None:
    anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
    headings = re.findall(r"^#+ (.+)$", OPERATIONS.read_text(), flags=re.MULTILINE)
    assert anchor in {h.strip().lower().replace(" ", "-") for h in headings}, (
        f"{rule['alert']}: no section '{anchor}' in docs/operations.md"
    )
    assert rule["labels"]["severity"] in {"warning", "critical"}


def test_the_crash_loop_rule_selects_the_worker_container() -> None:
    (rule,) = [r for r in RULE_LIST if r["alert"] == "WorkerPoolWorkerCrashLooping"]
    assert f'container="{labels.CONTAINER_NAME}"' in rule["expr"]


def test_the_issue_alerts_are_all_there() -> None:
    assert {r["alert"] for r in RULE_LIST} == {
        "WorkerPoolDeadLettersGrowing",
        "WorkerPoolJobsWaitingWithoutWorkers",
        "WorkerPoolUnableToScale",
        "WorkerPoolOperatorDown",
        "WorkerPoolWorkerCrashLooping",
        "WorkerPoolBacklogAboveCapacity",
    }
