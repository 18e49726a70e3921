"""What a PromQL expression reads, and what the code's metric registries export.

Enough of PromQL for the shipped dashboard and alert rules: metric names, the labels their
matchers, groupings and vector matching name, and Grafana's ``label_values``. It is not a
parser (promtool checks the syntax); it lets a test tell that every series a panel or an alert
reads is one the code really exports, so a rename cannot leave a panel silently empty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from itl_controlplane_sdk.api.metrics import ApiMetrics
from itl_controlplane_sdk.workers.base import WorkerRole
from itl_controlplane_sdk.workers.metrics import WorkerMetrics
from workerpool_operator.autoscaler.metrics import AutoscalerMetrics
from workerpool_operator.metrics import OperatorMetrics

KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless"}
    | {"bool", "offset", "inf", "nan"}
)
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
MATCHERS = re.compile(r"\{([^}]*)\}")
MATCHER_LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
RANGES = re.compile(r"\[[^\]]*\]")
IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_VALUES = re.compile(r"label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$")
GRAFANA_VARIABLE = re.compile(r"\$(?:__\w+|\{\w+\}|\w+)")
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s")
TARGET_LABELS = frozenset({"job", "instance"})
"""Labels Prometheus adds to every scraped series."""


SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")


@dataclass
class Reads:
    """Metric names and label names one expression refers to."""

    metrics: set[str] = field(default_factory=set)
    labels: set[str] = field(default_factory=set)
    """Labels of groupings, vector matching and ``label_values``: some metric must carry them."""
    matchers: dict[str, set[str]] = field(default_factory=dict)
    """Metric -> the labels its own selector matches on: that metric must carry them."""

    def problems(self, exported: dict[str, set[str]], external: frozenset[str]) -> list[str]:
        """What is wrong with these reads against ``exported`` (plus ``external`` metrics)."""
        found = []
        known = {name for name in self.metrics if name in exported}
        for name in sorted(self.metrics - known - external):
            found.append(f"metric {name} is not exported by the code")
        for name, labels in self.matchers.items():
            if name in exported and labels - exported[name]:
                found.append(f"{name} has no label {', '.join(sorted(labels - exported[name]))}")
        carried = set().union(*(exported[name] for name in known)) if known else set()
        if known and self.metrics <= set(exported) and self.labels - carried:
            found.append(f"no metric read carries {', '.join(sorted(self.labels - carried))}")
        return found


def reads(expr: str) -> Reads:
    """The metrics and labels ``expr`` (PromQL, Grafana variables allowed) refers to."""
    found = Reads()
    expr = GRAFANA_VARIABLE.sub("x", expr.strip())
    if match := LABEL_VALUES.match(expr):
        expr, label = match.group(1), match.group(2)
        found.labels.add(label)
    for group in GROUPING.findall(expr):
        found.labels.update(name.strip() for name in group.split(",") if name.strip())
    rest = GROUPING.sub(" ", expr)
    for name, body in SELECTOR.findall(STRINGS.sub('""', rest)):
        found.matchers.setdefault(name, set()).update(MATCHER_LABEL.findall(body))
    rest = MATCHERS.sub(" ", STRINGS.sub(" ", rest))
    rest = RANGES.sub(" ", rest)
    for match in IDENTIFIER.finditer(rest):
        name = match.group(0)
        followed_by = rest[match.end() :].lstrip()[:1]
        if name.lower() in KEYWORDS or followed_by == "(":
            continue  # a function call or an operator keyword
        found.metrics.add(name)
    return found


class _IdleWorker(WorkerRole):
    async def _start_impl(self) -> None: ...

    async def _stop_impl(self) -> None: ...

    async def _process_job_impl(self, *args: object) -> dict[str, object]:
        return {}


def _families(registry: CollectorRegistry) -> dict[str, set[str]]:
    """Every sample name a registry can export, with its label names."""
    series: dict[str, set[str]] = {}
    # prometheus-client has no public way to list a registry's metrics with their label names
    # (collect() yields only label sets already used), so read its private attributes.
    for collector in list(registry._collector_to_names):
        name, kind = collector._name, collector._type
        labels = set(collector._labelnames)
        suffixes = {
            "counter": ("_total", "_created"),
            "gauge": ("",),
            "histogram": ("_bucket", "_count", "_sum", "_created"),
        }[kind]
        for suffix in suffixes:
            series[name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return series


def exported_series() -> dict[str, set[str]]:
    """Sample name -> label names of every metric the worker, API and operator export."""
    worker = WorkerMetrics("w", "ns/pool")
    series: dict[str, set[str]] = {}
    for registry in (
        worker.registry,
        ApiMetrics().registry,
        _registered(OperatorMetrics),
        _registered(AutoscalerMetrics),
    ):
        series.update(_families(registry))
    # The API reference's four worker metrics are rendered by hand, outside the registry (and
    # without the _total a parser would add to a counter's name): read the exposition itself.
    for line in worker.render(_IdleWorker("w")).decode().splitlines():
        if match := SAMPLE.match(line):
            labels = set(MATCHER_LABEL.findall(match.group(2) or ""))
            series.setdefault(match.group(1), set()).update(labels)
    return {name: labels | TARGET_LABELS for name, labels in series.items()}


def _registered(kind: type[OperatorMetrics] | type[AutoscalerMetrics]) -> CollectorRegistry:
    registry = CollectorRegistry()
    kind(registry)
    return registry
