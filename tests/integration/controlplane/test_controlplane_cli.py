"""``python -m localcluster up|env|status|down`` (behind ``make cluster-up``/``cluster-down``)
starts a background control plane that outlives the command and stops exactly its own processes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from localcluster import ClusterUnavailable, KubeClient
from localcluster.binaries import APISERVER_ONLY, discover
from localcluster.process import pid_alive
from localcluster.pytest_plugin import unavailable

pytestmark = pytest.mark.integration


def cli(run_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "localcluster", "--dir", str(run_dir), *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_cli_up_env_status_down(tmp_path: Path) -> None:
    try:
        discover(APISERVER_ONLY).require(APISERVER_ONLY)
    except ClusterUnavailable as exc:
        unavailable(str(exc))
    run_dir = tmp_path / "cluster"
    pids: list[int] = []
    up = cli(run_dir, "up", "--apiserver-only")
    try:
        assert up.returncode == 0, up.stderr
        assert f"export KUBECONFIG={run_dir / 'admin.kubeconfig'}" in up.stdout
        state = json.loads((run_dir / "state.json").read_text())
        pids = [c["pid"] for c in state["components"]]
        assert [c["name"] for c in state["components"]] == ["etcd", "kube-apiserver"]

        # The command has exited; the cluster keeps serving.
        api = KubeClient.from_kubeconfig(run_dir / "admin.kubeconfig")
        assert api.raw_text("/readyz") == "ok"

        again = cli(run_dir, "up", "--apiserver-only")
        assert again.returncode == 0 and "already running" in again.stderr
        assert json.loads((run_dir / "state.json").read_text())["components"][0]["pid"] == pids[0]

        assert cli(run_dir, "env").stdout == up.stdout
        status = cli(run_dir, "status")
        assert status.returncode == 0 and "kube-apiserver" in status.stdout
    finally:
        down = cli(run_dir, "down")
    assert down.returncode == 0, down.stderr
    assert not any(pid_alive(p) for p in pids)
    assert not run_dir.exists()
    assert cli(run_dir, "env").returncode == 1
