"""Fixtures shared by the control-plane integration tests.

Structured reads use the harness's stdlib client (``cluster.api``); ``kubectl`` is used where the
CLI behaviour itself is what users rely on.  Every wait polls with a deadline (``wait_until``);
nothing sleeps and hopes.
"""

from __future__ import annotations

import pytest

from localcluster import Cluster
from localcluster.workloads import Workloads


@pytest.fixture
def workloads(k8s_cluster: Cluster, k8s_namespace: str) -> Workloads:
    """Workload helpers in a fresh namespace of the full control plane."""
    return Workloads(k8s_cluster, k8s_namespace)
