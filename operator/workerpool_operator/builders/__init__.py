"""Pure builders: a WorkerPool in, the plain-dict manifests of its children out.

One module per child kind (the cluster-operator pattern). Builders never talk to the API
server and import no kopf or Kubernetes client: ``reconcile`` applies what they return with
server-side apply, in the order of ``build_children``.
"""

from __future__ import annotations

from typing import Any

from workerpool_operator.api import WorkerPool
from workerpool_operator.builders.deployment import build_deployment
from workerpool_operator.builders.pdb import build_pdb
from workerpool_operator.builders.service import build_service


def build_children(pool: WorkerPool, *, default_image: str) -> list[dict[str, Any]]:
    """Every child of ``pool``, in apply order.

    The Service and PodDisruptionBudget come first: they are cheap, and a PDB that exists
    before the pods do protects them from the first voluntary eviction.
    """
    return [
        build_service(pool),
        build_pdb(pool),
        build_deployment(pool, default_image=default_image),
    ]


__all__ = ["build_children", "build_deployment", "build_pdb", "build_service"]
