"""Fixtures for the operator's integration tests on the real control plane.

One operator process per session (``python -m workerpool_operator``), watching only the
``wpo-*`` namespaces these tests create, so other suites' objects are never touched. Each
test gets a fresh namespace that *enforces* the ``restricted`` Pod Security Standard (so every
worker pod the tests see was admitted under it) and holds the broker Secret.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from itl_harness.operator_process import REPO, OperatorProcess
from itl_harness.stack import LOCAL_BROKER_URL, put_secret
from localcluster import ApiError, Cluster
from workerpool_operator import crd

NAMESPACE_PREFIX = "wpo-"
CRD_FILE = REPO / "crds" / crd.CRD_FILE_NAME
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


@pytest.fixture(scope="session")
def workerpool_crd(k8s_cluster: Cluster) -> Path:
    """The generated CRD installed (server-side apply, as users and Helm do) and Established."""
    k8s_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
    k8s_cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", f"crd/{crd.api.CRD_NAME}"
    )
    return CRD_FILE


@pytest.fixture(scope="session")
def operator(
    k8s_cluster: Cluster, workerpool_crd: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The operator, running for the whole session."""
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    process = OperatorProcess(k8s_cluster.kubeconfig, log, namespaces=f"{NAMESPACE_PREFIX}*")
    process.start()
    try:
        process.wait_until_watching(k8s_cluster, NAMESPACE_PREFIX)
        yield process
    finally:
        process.stop()
        print(f"operator log: {log}")


@pytest.fixture
def wp_namespace(k8s_cluster: Cluster, operator: OperatorProcess) -> Iterator[str]:
    """A fresh ``wpo-*`` namespace enforcing restricted PSS, with the broker Secret."""
    name = k8s_cluster.create_namespace(f"{NAMESPACE_PREFIX}{uuid.uuid4().hex[:8]}", RESTRICTED)
    put_secret(k8s_cluster, name, LOCAL_BROKER_URL)
    yield name
    with contextlib.suppress(ApiError):
        k8s_cluster.api.delete(f"/api/v1/namespaces/{name}")
