"""Fixtures for the autoscaler on the real control plane and the real RabbitMQ.

One operator process (reconcile + autoscaler) per session, watching only the ``wpa-*``
namespaces these tests create. Each test gets a fresh namespace with the broker Secret
and a unique provider name, so its pool's queue is bound to a routing key nobody else
publishes to and other suites' jobs never show up in its queue depth.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from itl_harness.operator_process import OperatorProcess
from localcluster import ApiError, Cluster
from workerpool_operator import crd

NAMESPACE_PREFIX = "wpa-"


@pytest.fixture(scope="session")
def autoscaler_crd(k8s_cluster: Cluster) -> Path:
    path = Path(__file__).resolve().parents[3] / "crds" / crd.CRD_FILE_NAME
    k8s_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    k8s_cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", f"crd/{crd.api.CRD_NAME}"
    )
    return path


@pytest.fixture(scope="session")
def autoscaling_operator(
    k8s_cluster: Cluster,
    autoscaler_crd: Path,
    rabbitmq_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    log = tmp_path_factory.mktemp("autoscaler") / "operator.log"
    process = OperatorProcess(k8s_cluster.kubeconfig, log, namespaces=f"{NAMESPACE_PREFIX}*")
    process.start()
    try:
        process.wait_until_watching(k8s_cluster, NAMESPACE_PREFIX)
        yield process
    finally:
        process.stop()
        print(f"operator log: {log}")


@pytest.fixture
def wpa_namespace(k8s_cluster: Cluster, autoscaling_operator: OperatorProcess) -> Iterator[str]:
    name = k8s_cluster.create_namespace(f"{NAMESPACE_PREFIX}{uuid.uuid4().hex[:8]}")
    yield name
    with contextlib.suppress(ApiError):
        k8s_cluster.api.delete(f"/api/v1/namespaces/{name}")
