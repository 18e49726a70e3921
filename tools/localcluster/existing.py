"""Use a cluster that is already running instead of starting one.

Two sources, both opt-in by design:

* ``USE_EXISTING_CLUSTER=true`` (the envtest convention): the current kubeconfig context.
  Tests create and delete objects, so the context name must look like a disposable test cluster
  (``kind-*``, ``kwok-*``, ``k3d-*``, ``*-test*``, ``test-*``, ``envtest*``,
  ``itl-localcluster*``) or be listed in ``ITL_ALLOW_CONTEXT`` (comma-separated exact names).
  Anything else is refused: a typo in KUBECONFIG must never let tests loose on production.
* the cluster started by ``python -m localcluster up`` (``make cluster-up``), found through its
  state file; reused only while all its processes run and ``/readyz`` answers.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from . import kubeconfig, process, state
from .binaries import Binaries, discover
from .cluster import Cluster
from .errors import ClusterUnavailable
from .kubeapi import KubeClient

TEST_CONTEXT_PATTERNS = (
    "kind-*",
    "kwok-*",
    "k3d-*",
    "*-test*",
    "test-*",
    "envtest*",
    "itl-localcluster*",
)
TRUTHY = {"1", "true", "yes", "on"}


def use_existing_cluster() -> bool:
    """True when USE_EXISTING_CLUSTER asks for the current kubeconfig context."""
    return os.environ.get("USE_EXISTING_CLUSTER", "").strip().lower() in TRUTHY


def context_allowed(name: str) -> bool:
    """The context-name guard described in the module docstring."""
    allowed = {c.strip() for c in os.environ.get("ITL_ALLOW_CONTEXT", "").split(",") if c.strip()}
    return name in allowed or any(fnmatch.fnmatchcase(name, p) for p in TEST_CONTEXT_PATTERNS)


def _kubectl(binaries: Binaries) -> str:
    if "kubectl" in binaries.paths:
        return str(binaries.paths["kubectl"])
    found = shutil.which("kubectl")
    if not found:
        raise ClusterUnavailable("USE_EXISTING_CLUSTER=true but no kubectl is available")
    return found


def existing_cluster(binaries: Binaries | None = None) -> Cluster:
    """The current context as a Cluster, after the guard; its kubeconfig is pinned to that context.

    The minified copy (``kubectl config view --minify --raw``) keeps a later ``kubectl config
    use-context`` in another shell from redirecting a running test session.
    """
    binaries = binaries or discover()
    try:
        out = subprocess.run(
            [_kubectl(binaries), "config", "view", "--minify", "--raw", "-o", "json"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
    except subprocess.CalledProcessError as exc:
        raise ClusterUnavailable(
            f"cannot read the current kubeconfig context: {exc.stderr}"
        ) from exc
    doc = json.loads(out)
    context = doc.get("current-context") or ""
    if not context_allowed(context):
        raise ClusterUnavailable(
            f"USE_EXISTING_CLUSTER=true refuses context {context!r}: it does not look like a test "
            f"cluster (patterns {', '.join(TEST_CONTEXT_PATTERNS)}); "
            f"set ITL_ALLOW_CONTEXT={context} "
            "to allow it explicitly"
        )
    run_dir = Path(tempfile.mkdtemp(prefix="itl-existing-"))
    path = kubeconfig.write(run_dir / "kubeconfig", doc)
    server = kubeconfig.credentials(doc).server
    return Cluster(
        kubeconfig=path,
        server=server,
        bin_dir=binaries.bin_dir,
        binaries=binaries,
        mode="existing",
        run_dir=run_dir,
    )


def recorded_cluster(
    run_dir: Path | None = None, binaries: Binaries | None = None
) -> Cluster | None:
    """The healthy CLI-started cluster recorded in *run_dir*, or None."""
    run_dir = run_dir or state.default_run_dir()
    data = state.read(run_dir)
    if not data:
        return None
    marker = str(data["run_dir"])
    pids = {c["name"]: int(c["pid"]) for c in data.get("components", [])}
    if not pids or not all(
        process.pid_alive(p) and process.owned_by(p, marker) for p in pids.values()
    ):
        return None
    path = Path(data["kubeconfig"])
    try:
        if KubeClient.from_kubeconfig(path).raw_text("/readyz") != "ok":
            return None
    except Exception:
        return None
    return Cluster(
        kubeconfig=path,
        server=str(data["server"]),
        bin_dir=Path(data["bin_dir"]) if data.get("bin_dir") else None,
        binaries=binaries or discover(),
        mode=str(data["mode"]),
        run_dir=Path(marker),
        pids=pids,
    )


def stop_recorded(run_dir: Path) -> list[str]:
    """Stop the processes recorded in *run_dir* (only ours: pid + run-dir marker); return names."""
    data = state.read(run_dir)
    if not data:
        return []
    marker = str(data["run_dir"])
    stopped = []
    for c in reversed(data.get("components", [])):
        comp = process.Component(
            name=c["name"], pid=int(c["pid"]), log=Path(c["log"]), argv=list(c["argv"])
        )
        if process.pid_alive(comp.pid) and process.owned_by(comp.pid, marker):
            process.stop(comp, marker=marker)
            stopped.append(comp.name)
    state.clear(run_dir)
    return stopped
