"""A real, local Kubernetes control plane for tests and development.

Starts etcd, kube-apiserver and (in full mode) kube-controller-manager, kube-scheduler and kwok
with one fake Ready node, from binaries built by ``tools/controlplane/build.sh``.  Entry points:

* :func:`localcluster.controlplane.LocalCluster` — programmatic start/stop;
* ``python -m localcluster up|down|env|status`` — a background cluster for local runs;
* ``localcluster.pytest_plugin`` — session fixtures ``k8s_cluster`` and ``k8s_apiserver``.
"""

from __future__ import annotations

from .binaries import Binaries, discover
from .cluster import Cluster
from .controlplane import MODE_APISERVER, MODE_FULL, LocalCluster
from .errors import ClusterUnavailable, ComponentFailed
from .existing import existing_cluster, recorded_cluster, use_existing_cluster
from .kubeapi import ApiError, KubeClient
from .waiting import WaitTimeout, wait_until

__all__ = [
    "MODE_APISERVER",
    "MODE_FULL",
    "ApiError",
    "Binaries",
    "Cluster",
    "ClusterUnavailable",
    "ComponentFailed",
    "KubeClient",
    "LocalCluster",
    "WaitTimeout",
    "discover",
    "existing_cluster",
    "recorded_cluster",
    "use_existing_cluster",
    "wait_until",
]
