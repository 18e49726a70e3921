"""Settings of the e2e suite: where the workloads run, which images, which broker URL.

The same tests run in two places, chosen by environment variables (``e2e/kind.sh`` sets
them for kind; the defaults are the local control plane):

* ``ITL_E2E_WORKLOADS=local`` (default): no container runs on the kwok node, so the operator
  runs as a local process with the chart's ServiceAccount token, and each worker pod gets a
  local worker process whose WORKER_ID is the pod name (the autoscaler's ``PodWorkers``).
* ``ITL_E2E_WORKLOADS=cluster``: the chart's Deployment is the operator and the pool's pods
  are the workers (images built and loaded by ``kind.sh``).
* ``ITL_E2E_IMAGE_TAG``: tag of both images (default: the chart's appVersion).
* ``ITL_E2E_POOL_RABBITMQ_URL``: the broker URL as the workers see it, written into the
  pool's Secret (default: ``rabbitmq_url``, the broker the tests publish to).

The cluster comes from the ``k8s_cluster`` fixture: the local control plane, or the current
context with ``USE_EXISTING_CLUSTER=true`` (guarded by its name, e.g. ``kind-*``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from localcluster import Cluster
from tests.support.services import in_ci, require_rabbitmq

# Fixtures of tests/conftest.py are not visible here (conftest fixtures are per directory):
# load the control-plane plugin (a no-op when tests/conftest.py already did) and define the
# broker fixture the same way.

LOCAL = "local"
CLUSTER = "cluster"


@dataclass(frozen=True)
class E2ESettings:
    workloads: str
    image_tag: str | None
    pool_rabbitmq_url: str

    @property
    def local(self) -> bool:
        return self.workloads == LOCAL


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    """AMQP URL of the broker the tests publish to (``ITL_TEST_RABBITMQ_URL``), reachable."""
    url = os.environ.get("ITL_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
    require_rabbitmq(url)
    return url


@pytest.fixture(scope="session")
def e2e_settings(rabbitmq_url: str) -> E2ESettings:
    workloads = os.environ.get("ITL_E2E_WORKLOADS", LOCAL).strip().lower()
    if workloads not in (LOCAL, CLUSTER):
        raise pytest.UsageError(f"ITL_E2E_WORKLOADS must be {LOCAL} or {CLUSTER}: {workloads!r}")
    return E2ESettings(
        workloads=workloads,
        image_tag=os.environ.get("ITL_E2E_IMAGE_TAG") or None,
        pool_rabbitmq_url=os.environ.get("ITL_E2E_POOL_RABBITMQ_URL") or rabbitmq_url,
    )


@pytest.fixture(scope="session")
def helm_ready(k8s_cluster: Cluster) -> None:
    """The suite installs with helm: missing, it skips locally and fails under CI=true."""
    if "helm" not in k8s_cluster.binaries.paths:
        reason = "helm not built (run `make k8s-binaries`) and ITL_HELM_BIN not set"
        if in_ci():
            pytest.fail(f"helm unavailable under CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
