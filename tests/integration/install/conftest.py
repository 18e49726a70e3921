"""Fixtures for the install tests: the cached helm and kubectl, and a chart release.

helm and kubectl come from ``tools/controlplane/build.sh``'s cache (kubectl built with the
API server, so no version skew). Missing binaries skip the tests on a developer machine and
fail them under CI=true, like every other service the tests need.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from itl_harness import stack
from localcluster import Cluster, discover
from tests.support.services import in_ci


def _binary(name: str) -> Path:
    binaries = discover(("kubectl", "helm"))
    path = binaries.paths.get(name)
    if path is None:
        reason = f"{name} not built (run `make k8s-binaries`)"
        if in_ci():
            pytest.fail(f"{name} unavailable under CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    return _binary("helm")


@pytest.fixture(scope="session")
def kubectl_bin() -> Path:
    return _binary("kubectl")


@pytest.fixture
def operator_namespace(k8s_cluster: Cluster, helm_bin: Path) -> Iterator[str]:
    """Where the chart is installed: enforces restricted PSS, so its pod must meet it."""
    name = stack.create_namespace(k8s_cluster, "wpi-op-")
    yield name
    stack.delete_namespace(k8s_cluster, name)


@pytest.fixture
def pool_namespace(k8s_cluster: Cluster) -> Iterator[str]:
    """Where the test's WorkerPool lives, with the broker Secret it references."""
    name = stack.create_namespace(k8s_cluster, "wpi-pool-")
    stack.put_secret(k8s_cluster, name, "amqp://guest:guest@127.0.0.1:5672/")
    yield name
    stack.delete_namespace(k8s_cluster, name)
