"""The PodDisruptionBudget that lets node drains evict workers one at a time.

A worker drains on SIGTERM (finishes its jobs within the grace period), so evicting one pod
at a time keeps capacity while never blocking a drain forever. Unhealthy pods may always be
evicted: a crash-looping worker holds no jobs worth protecting.
"""

from __future__ import annotations

from typing import Any

from workerpool_operator import labels
from workerpool_operator.api import WorkerPool


def build_pdb(pool: WorkerPool) -> dict[str, Any]:
    """A policy/v1 PodDisruptionBudget with ``maxUnavailable: 1``."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": labels.child_metadata(pool),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": labels.selector_labels(pool.metadata.name)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }
