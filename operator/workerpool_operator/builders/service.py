"""The Service in front of the workers' health/metrics port (for scraping and debugging)."""

from __future__ import annotations

from typing import Any

from workerpool_operator import labels
from workerpool_operator.api import WorkerPool


def build_service(pool: WorkerPool) -> dict[str, Any]:
    """A ClusterIP Service selecting the pool's pods on the ``health`` port."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": labels.child_metadata(pool),
        "spec": {
            "type": "ClusterIP",
            "selector": labels.selector_labels(pool.metadata.name),
            "ports": [
                {
                    "name": labels.HEALTH_PORT_NAME,
                    "port": labels.HEALTH_PORT,
                    "targetPort": labels.HEALTH_PORT_NAME,
                    "protocol": "TCP",
                }
            ],
        },
    }
