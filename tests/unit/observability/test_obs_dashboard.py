"""The shipped Grafana dashboard reads only series the code exports.

Every query of every panel, annotation and variable is checked against the metric registries
of the worker, the API, the operator and its autoscaler: a renamed metric or label fails here
instead of leaving a panel silently empty.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.promql import Reads, exported_series, reads

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "charts" / "workerpool-operator" / "dashboards" / "workerpools.json"
LEGEND_LABEL = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _queries() -> list[tuple[str, str, str]]:
    """(where, PromQL, legend) of every query in the dashboard."""
    dash = _dashboard()
    found = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            found.append((panel["title"], target["expr"], target.get("legendFormat", "")))
    for annotation in dash["annotations"]["list"]:
        legend = annotation.get("titleFormat", "") + annotation.get("textFormat", "")
        found.append((f"annotation {annotation['name']}", annotation["expr"], legend))
    for variable in dash["templating"]["list"]:
        if variable["type"] == "query":
            found.append((f"variable {variable['name']}", variable["query"]["query"], ""))
    return found


QUERIES = _queries()


@pytest.mark.parametrize(("where", "expr", "legend"), QUERIES, ids=[q[0] for q in QUERIES])
def test_every_query_reads_exported_series(where: str, expr: str, legend: str) -> None:
    read = reads(expr)
    assert read.metrics, f"{where}: no metric in {expr!r}"
    read.labels.update(LEGEND_LABEL.findall(legend))
    problems = read.problems(exported_series(), frozenset())
    assert not problems, f"{where}: {'; '.join(problems)} in {expr!r}"


def test_a_renamed_metric_or_label_is_caught() -> None:
    exported = exported_series()
    renamed = reads('sum by (pool) (rate(worker_jobs_done_total{pool=~"$pool"}[5m]))')
    assert renamed.problems(exported, frozenset()) == [
        "metric worker_jobs_done_total is not exported by the code"
    ]
    relabelled = reads('workerpool_desired_replicas{queue="q"}')
    assert relabelled.problems(exported, frozenset()) == [
        "workerpool_desired_replicas has no label queue"
    ]
    regrouped = Reads(metrics={"workerpool_desired_replicas"}, labels={"worker_id"})
    assert regrouped.problems(exported, frozenset()) == ["no metric read carries worker_id"]


def test_the_dashboard_answers_the_fleet_questions() -> None:
    """Queue depth, in-flight, desired vs ready, decisions, outcomes, latency, DLQ, retries,
    broker: each has a panel reading the series that tells it."""
    read = set().union(*(reads(expr).metrics for _, expr, _ in QUERIES))
    assert {
        "workerpool_queue_ready_messages",
        "workerpool_in_flight_jobs",
        "workerpool_desired_replicas",
        "workerpool_ready_replicas",
        "workerpool_scale_events_total",
        "workerpool_scaling_mode",
        "worker_job_duration_seconds_count",
        "worker_job_duration_seconds_bucket",
        "workerpool_dead_letter_messages",
        "worker_job_retries_total",
        "workerpool_broker_reachable",
    } <= read


def test_panels_have_unique_ids_and_a_datasource_variable() -> None:
    dash = _dashboard()
    ids = [panel["id"] for panel in dash["panels"]]
    assert len(ids) == len(set(ids))
    assert dash["uid"] == "itl-workerpools"
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    for panel in dash["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
