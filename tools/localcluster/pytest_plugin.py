"""pytest fixtures giving tests a real Kubernetes control plane.

Registered as a ``pytest11`` entry point by the repository's ``pyproject.toml``: installing the
project (``make python-deps``) enables it.

Fixtures (session-scoped unless noted):

* ``k8s_cluster`` — full control plane: etcd, kube-apiserver, kube-controller-manager,
  kube-scheduler and kwok with one Ready fake node.  Sets ``KUBECONFIG`` for the session.
* ``k8s_apiserver`` — etcd + kube-apiserver only (fast; no controllers, no node, ServiceAccount
  admission off).  Reuses the session's full cluster if one is already running.
* ``k8s_namespace`` (function) — a fresh namespace in ``k8s_cluster``, deleted afterwards.

Where the cluster comes from, in order: ``USE_EXISTING_CLUSTER=true`` (guarded current context);
a healthy ``make cluster-up`` cluster (unless ``ITL_LOCALCLUSTER_REUSE=0``); else one started for
the session in a temporary run dir (kept when ``ITL_LOCALCLUSTER_KEEP=1`` or startup fails).

If no cluster can be had, the test is skipped with the reason — except under ``CI=true``, where it
fails: CI must never go green by skipping the tests that matter.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from .binaries import discover
from .cluster import Cluster
from .controlplane import MODE_APISERVER, MODE_FULL, LocalCluster
from .errors import ClusterUnavailable
from .existing import existing_cluster, recorded_cluster, use_existing_cluster
from .kubeapi import ApiError

TRUTHY = {"1", "true", "yes", "on"}


def _env_flag(name: str, default: str = "") -> bool:
    return os.environ.get(name, default).strip().lower() in TRUTHY


def unavailable(reason: str) -> NoReturn:
    """Skip locally, fail in CI (docs/testing.md: a test missing a service fails under CI)."""
    if _env_flag("CI"):
        pytest.fail(f"Kubernetes control plane unavailable under CI=true: {reason}", pytrace=False)
    pytest.skip(f"Kubernetes control plane unavailable: {reason}")


class _Planes:
    """Clusters obtained in this pytest session, so both fixtures can share a full one."""

    def __init__(self) -> None:
        self.by_mode: dict[str, Cluster] = {}
        self.owned: list[LocalCluster] = []
        self.failures: dict[str, str] = {}
        self.scratch: list[Path] = []

    def get(self, mode: str) -> Cluster:
        if mode in self.failures:
            unavailable(self.failures[mode])
        if mode in self.by_mode:
            return self.by_mode[mode]
        if mode == MODE_APISERVER and MODE_FULL in self.by_mode:
            return self.by_mode[MODE_FULL]
        try:
            cluster = self._obtain(mode)
        except ClusterUnavailable as exc:
            self.failures[mode] = str(exc)
            unavailable(str(exc))
        self.by_mode[mode] = cluster
        return cluster

    def _obtain(self, mode: str) -> Cluster:
        if use_existing_cluster():
            cluster = existing_cluster()
            self.scratch.append(cluster.run_dir)
            return cluster
        binaries = discover()
        if _env_flag("ITL_LOCALCLUSTER_REUSE", "1"):
            recorded = recorded_cluster(binaries=binaries)
            if recorded is not None and (recorded.mode == mode or recorded.mode == MODE_FULL):
                return recorded
        base = os.environ.get("ITL_LOCALCLUSTER_TMP") or None
        run_dir = Path(tempfile.mkdtemp(prefix=f"itl-localcluster-{mode}-", dir=base))
        local = LocalCluster(
            run_dir,
            mode=mode,
            binaries=binaries,
            keep_run_dir=_env_flag("ITL_LOCALCLUSTER_KEEP"),
            tie_to_parent=True,
        )
        cluster = local.start()  # on failure it stops its processes and keeps run_dir/logs
        self.owned.append(local)
        return cluster

    def close(self) -> None:
        while self.owned:
            self.owned.pop().stop()
        while self.scratch:
            shutil.rmtree(self.scratch.pop(), ignore_errors=True)


@pytest.fixture(scope="session")
def _localcluster_planes() -> Iterator[_Planes]:
    """Session registry; stops every cluster this session started (also at interpreter exit)."""
    planes = _Planes()
    atexit.register(planes.close)
    try:
        yield planes
    finally:
        planes.close()
        atexit.unregister(planes.close)


@pytest.fixture(scope="session")
def k8s_cluster(_localcluster_planes: _Planes) -> Iterator[Cluster]:
    """A full control plane (controllers, scheduler, one Ready kwok node); KUBECONFIG exported."""
    cluster = _localcluster_planes.get(MODE_FULL)
    previous = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
    try:
        yield cluster
    finally:
        if previous is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = previous


@pytest.fixture(scope="session")
def k8s_apiserver(_localcluster_planes: _Planes) -> Cluster:
    """etcd + kube-apiserver only (or the session's full cluster if already running)."""
    return _localcluster_planes.get(MODE_APISERVER)


@pytest.fixture
def k8s_namespace(k8s_cluster: Cluster) -> Iterator[str]:
    """A fresh namespace (with its default ServiceAccount ready); deletion is not awaited."""
    name = k8s_cluster.create_namespace()
    yield name
    with contextlib.suppress(ApiError):
        k8s_cluster.api.delete(f"/api/v1/namespaces/{name}")
