"""The operator's RBAC needs, as data: the single source the chart and manifests render.

Each rule says which behaviour needs it; a rule without a tested behaviour does not belong
here. Secrets are only ever read one by one (``get``): the operator checks that the Secret a
pool references exists and has its key, and never lists, watches or writes Secrets.

Pure module.
"""

from __future__ import annotations

from typing import Any

from workerpool_operator.api import GROUP, PLURAL

NAMESPACE_PATTERN_RULES: list[dict[str, Any]] = [
    # Only when WORKERPOOL_OPERATOR_NAMESPACES contains a glob ("team-*"): Kopf then watches
    # namespaces to resolve the pattern, and CRDs for resources appearing later. Cluster-wide
    # or with plain namespace names, discovery at startup needs no RBAC at all.
    {
        "apiGroups": [""],
        "resources": ["namespaces"],
        "verbs": ["list", "watch"],
    },
    {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": ["list", "watch"],
    },
]
"""Cluster-scoped rules needed only for namespace patterns."""

RULES: list[dict[str, Any]] = [
    # Watch pools (handlers, index of pools), record diff-base/progress annotations on them;
    # the autoscaler writes spec.replicaCount (a merge patch answering with the whole pool).
    {
        "apiGroups": [GROUP],
        "resources": [PLURAL],
        "verbs": ["get", "list", "watch", "patch"],
    },
    # Write observedGeneration, replicas, selector and conditions (status apply).
    {
        "apiGroups": [GROUP],
        "resources": [f"{PLURAL}/status"],
        "verbs": ["get", "patch", "update"],
    },
    # Children carry ownerReferences with blockOwnerDeletion: clusters running the
    # OwnerReferencesPermissionEnforcement admission plugin require this on the owner.
    {
        "apiGroups": [GROUP],
        "resources": [f"{PLURAL}/finalizers"],
        "verbs": ["update"],
    },
    # The worker Deployment: server-side apply (create/patch), watch for status and drift,
    # get to compare the live object with the desired one.
    {
        "apiGroups": ["apps"],
        "resources": ["deployments"],
        "verbs": ["get", "list", "watch", "create", "patch"],
    },
    # The PodDisruptionBudget: server-side apply and drift check.
    {
        "apiGroups": ["policy"],
        "resources": ["poddisruptionbudgets"],
        "verbs": ["get", "create", "patch"],
    },
    # Autoscaler: the pod index (which pods of a pool exist and are Ready, to match them with
    # worker heartbeats) and the pod-deletion-cost annotation set on idle pods just before a
    # scale-down, so the ReplicaSet removes idle pods first.
    {
        "apiGroups": [""],
        "resources": ["pods"],
        "verbs": ["get", "list", "watch", "patch"],
    },
    # Autoscaler: sets the Deployment's replicas right after the pool's, through the scale
    # subresource (only the replica count), so a scale does not wait for a reconcile.
    {
        "apiGroups": ["apps"],
        "resources": ["deployments/scale"],
        "verbs": ["patch"],
    },
    # Check that the referenced broker Secret exists and has its key (Degraded otherwise).
    {
        "apiGroups": [""],
        "resources": ["secrets"],
        "verbs": ["get"],
    },
    # Events on WorkerPools (created, updated, drift repaired, failures).
    {
        "apiGroups": ["", "events.k8s.io"],
        "resources": ["events"],
        "verbs": ["create", "patch"],
    },
]
"""Rules needed in every watched namespace (a ClusterRole, or a Role per namespace)."""

PEERING_RULES: list[dict[str, Any]] = [
    # Only with WORKERPOOL_OPERATOR_PEERING_NAME set (HA): Kopf's peering keep-alives.
    {
        "apiGroups": ["kopf.dev"],
        "resources": ["kopfpeerings", "clusterkopfpeerings"],
        "verbs": ["get", "list", "watch", "patch"],
    },
]
"""Rules needed only when Kopf peering (HA) is enabled."""
