"""The control plane is real: versions, the fake node, and the cached helm.

The control plane of docs/testing.md: ``kubectl version`` shows the server version; the kwok
node is Ready; ``helm version`` runs from the build cache.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from localcluster import Cluster

pytestmark = pytest.mark.integration

VERSIONS = Path(__file__).resolve().parents[3] / "tools" / "controlplane" / "versions.env"


def pinned(name: str) -> str:
    """A version pinned in tools/controlplane/versions.env."""
    for line in VERSIONS.read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.split("=", 1)[1].strip()
    raise KeyError(name)


def test_kubectl_version_reports_the_server_release(k8s_cluster: Cluster) -> None:
    out = json.loads(k8s_cluster.kubectl("version", "-o", "json").stdout)
    server = out["serverVersion"]["gitVersion"]
    assert re.fullmatch(r"v1\.\d+\.\d+", server), server
    if k8s_cluster.mode != "existing":
        stamped = subprocess.run(
            [str(k8s_cluster.binaries.get("kube-apiserver")), "--version"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[-1]
        assert server == stamped
        assert out["clientVersion"]["gitVersion"] == server  # kubectl built with the server


def test_version_stamp_matches_the_pin_when_built_here(k8s_cluster: Cluster) -> None:
    if k8s_cluster.bin_dir is None or "itl-workers" not in str(k8s_cluster.bin_dir):
        pytest.skip("binaries do not come from tools/controlplane/build.sh")
    assert k8s_cluster.api.get("/version")["gitVersion"] == pinned("K8S_VERSION")


def test_the_fake_node_is_ready_and_schedulable(k8s_cluster: Cluster) -> None:
    nodes = json.loads(k8s_cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    assert nodes, "no nodes registered"
    node = nodes[0]
    ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert ready.get("Ready") == "True", ready
    assert not node["spec"].get("unschedulable")
    taints = [t["key"] for t in node["spec"].get("taints") or []]
    assert "node.kubernetes.io/not-ready" not in taints


def test_helm_runs_from_the_cache(k8s_cluster: Cluster) -> None:
    helm = k8s_cluster.binaries.get("helm")
    out = k8s_cluster.helm("version", "--short").stdout.strip()
    assert out.startswith("v3."), out
    if k8s_cluster.bin_dir is not None and helm.parent == k8s_cluster.bin_dir:
        assert out.split("+")[0] == pinned("HELM_VERSION")
    # helm reaches the cluster through the exported KUBECONFIG
    assert k8s_cluster.helm("list", "--all-namespaces").returncode == 0
