"""The kind tier's own tests: what only a real kubelet running the project's images can show.

They run with ``e2e/kind.sh`` (``make e2e-kind``, ``ITL_E2E_WORKLOADS=cluster``) and are not
collected on the local control plane, where no container runs (kwok's pods are fakes), so
there is nothing for them to observe. One Helm release of the chart serves the whole module:
the operator is the chart's Deployment, each test creates its own pool.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import replace

import pytest

from e2e.conftest import CLUSTER, E2ESettings
from itl_harness.story import Story
from localcluster import Cluster

if os.environ.get("ITL_E2E_WORKLOADS", "").strip().lower() != CLUSTER:
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="module")
def installed(
    k8s_cluster: Cluster,
    helm_ready: None,
    rabbitmq_url: str,
    e2e_settings: E2ESettings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Story]:
    """The chart installed and its operator pod rolled out, serving one restricted namespace."""
    run = Story(
        cluster=k8s_cluster,
        rabbitmq_url=rabbitmq_url,
        pool_rabbitmq_url=e2e_settings.pool_rabbitmq_url,
        work_dir=tmp_path_factory.mktemp("realpods"),
        local=False,
        image_tag=e2e_settings.image_tag,
        pool_name="unused",
    )
    run.create_namespaces("kind-")
    try:
        run.install()
        run.start_operator()
        yield run
    finally:
        run.close()


def for_pool(installed: Story, name: str) -> Story:
    """The installed release seen through one pool (its queue, its Deployment, its status)."""
    return replace(
        installed, pool_name=name, history=[], _sampler=None, _stop=threading.Event(), release=None
    )
