"""The Service in front of the workers' health/metrics port (for scraping and debugging)."""

from __future__ import annotations

from typing import Any

from workerpool_operator.api import WorkerPool
from workerpool_operator.builders import meta


def build_service(pool: WorkerPool) -> dict[str, Any]:
    """A ClusterIP Service selecting the pool's pods on the ``health`` port."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta.child_metadata(pool),
        "spec": {
            "type": "ClusterIP",
            "selector": meta.selector_labels(pool.metadata.name),
            "ports": [
                {
                    "name": meta.HEALTH_PORT_NAME,
                    "port": meta.HEALTH_PORT,
                    "targetPort": meta.HEALTH_PORT_NAME,
                    "protocol": "TCP",
                }
            ],
        },
    }
