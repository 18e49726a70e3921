"""The autoscaler's Kubernetes writes: deletion costs, the scale, its status.

A subclass of the operator's ``kube.Kube`` adapter (same error hierarchy, same dict-in,
dict-out style) with the writes only the autoscaler makes, under its own field manager so
its status fields and the operator's never fight over ownership:

- ``controller.kubernetes.io/pod-deletion-cost`` on pods (a merge patch of one
  annotation, just before a scale-down);
- ``spec.replicaCount`` of the WorkerPool (a merge patch of that one field), which stays
  the single source of the replica count (``api.desired_replicas``). A patch of the pool
  itself rather than of its ``scale`` subresource because it answers with the whole pool:
  the scaler puts that body in the operator's cache before anything else sees the new
  replica count (see the next point);
- the Deployment's replicas through its ``scale`` subresource, right after the pool's, so
  a scale does not wait for the operator's watch and reconcile (seconds under load). The
  reconcile that the pool's change triggers then finds the Deployment already right, and
  the Deployment's watch event is not drift, because both compare against the cached
  pool that already carries the new count. A failed Deployment write costs nothing but
  time: that reconcile applies the same count;
- the autoscaler-owned status fields (server-side apply, ``report.status_fields``).

It also reads the broker URL from the pool's Secret, cached for ``secret_ttl`` seconds so
100 pools polling every 5 s do not turn into 20 Secret reads per second.
"""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

from kubernetes_asyncio import client

from workerpool_operator import api, kube, scaling
from workerpool_operator.autoscaler import observe
from workerpool_operator.autoscaler.report import AUTOSCALER_FIELD_MANAGER

MERGE_PATCH = "application/merge-patch+json"


class AutoscalerKube(kube.Kube):
    """``kube.Kube`` plus the autoscaler's reads and writes."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        secret_ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(api_client, field_manager=AUTOSCALER_FIELD_MANAGER)
        self._secret_ttl = secret_ttl
        self._clock = clock
        self._secrets: dict[tuple[str, str, str], tuple[float, str | None]] = {}

    @classmethod
    def sharing(cls, operator_kube: kube.Kube) -> AutoscalerKube:
        """The autoscaler's writes over the operator's own client (one connection pool)."""
        return cls(operator_kube.api_client)

    async def broker_url(self, namespace: str, ref: api.SecretKeyRef) -> str | None:
        """The AMQP URL in the pool's Secret, or None when the Secret or key is missing."""
        key = (namespace, ref.name, ref.key)
        cached = self._secrets.get(key)
        if cached is not None and self._clock() - cached[0] < self._secret_ttl:
            return cached[1]
        secret = await self.get("v1", "Secret", namespace, ref.name)
        url: str | None = None
        if secret is not None:
            encoded = (secret.get("data") or {}).get(ref.key)
            if isinstance(encoded, str):
                url = base64.b64decode(encoded).decode("utf-8").strip() or None
        self._secrets[key] = (self._clock(), url)
        return url

    async def set_deletion_costs(
        self, namespace: str, costs: Sequence[scaling.DeletionCost]
    ) -> None:
        """Annotate each pod with its deletion cost, in order (victims first).

        A pod that vanished meanwhile is skipped: it no longer needs protecting.
        """
        for cost in costs:
            with contextlib.suppress(kube.NotFound):
                await self._request(
                    "PATCH",
                    f"/api/v1/namespaces/{namespace}/pods/{cost.pod}",
                    body={
                        "metadata": {
                            "annotations": {observe.DELETION_COST_ANNOTATION: str(cost.cost)}
                        }
                    },
                    query=[("fieldManager", self.field_manager)],
                    content_type=MERGE_PATCH,
                )

    async def scale(self, namespace: str, name: str, replicas: int) -> dict[str, Any]:
        """Set the pool's ``spec.replicaCount``; return the pool as written."""
        return await self._request(
            "PATCH",
            kube.object_path(api.API_VERSION, api.KIND, namespace, name),
            body={"spec": {"replicaCount": replicas}},
            query=[("fieldManager", self.field_manager)],
            content_type=MERGE_PATCH,
        )

    async def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        """Set the pool's Deployment's replicas through its scale subresource."""
        await self._request(
            "PATCH",
            kube.object_path("apps/v1", "Deployment", namespace, name, "scale"),
            body={"spec": {"replicas": replicas}},
            query=[("fieldManager", self.field_manager)],
            content_type=MERGE_PATCH,
        )
