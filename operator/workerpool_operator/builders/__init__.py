"""Pure builders: a WorkerPool in, the plain-dict manifests of its children out.

One module per child kind (the cluster-operator pattern). Builders never talk to the API
server and import no kopf or Kubernetes client: ``reconcile`` applies what they return with
server-side apply, all at once, and reports them in the order of ``build_children``.
"""

from __future__ import annotations

from typing import Any

from workerpool_operator.api import WorkerPool
from workerpool_operator.builders.deployment import build_deployment
from workerpool_operator.builders.pdb import build_pdb


def build_children(pool: WorkerPool, *, default_image: str) -> list[dict[str, Any]]:
    """Every child of ``pool``, in report order (they are applied concurrently).

    No Service: workers take no inbound traffic, Prometheus scrapes their metrics port through
    a PodMonitor that selects the pods themselves, and ``kubectl port-forward deploy/<pool>``
    reaches one worker for debugging. A Service per pool cost one more write per reconcile (a
    ClusterIP allocation, the slowest write at 1000 pools) and an EndpointSlice update for
    every pod that turns Ready or not, for nobody's use.
    """
    return [
        build_pdb(pool),
        build_deployment(pool, default_image=default_image),
    ]


__all__ = ["build_children", "build_deployment", "build_pdb"]
