"""Locate the control-plane binaries.

Why: developers may already have envtest assets (setup-envtest) or their own builds, and CI has
the cache produced by ``tools/controlplane/build.sh``.  Resolution order per binary (first wins):

1. ``ITL_<NAME>_BIN`` (e.g. ``ITL_KUBE_APISERVER_BIN``) — explicit per-binary override;
2. ``TEST_ASSET_<NAME>`` — the controller-runtime envtest convention;
3. ``$KUBEBUILDER_ASSETS/<name>`` — the setup-envtest directory convention;
4. ``ITL_K8S_BIN_DIR`` or the build.sh cache dir (``build.sh --print-bin-dir``);
5. ``/usr/local/kubebuilder/bin/<name>``.

``PATH`` is deliberately not searched: it would silently pick up e.g. Debian's etcd 3.4 or a kubectl
five minors behind the server, which makes failures confusing.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ClusterUnavailable

BUILD_SCRIPT = Path(__file__).resolve().parent.parent / "controlplane" / "build.sh"
KUBEBUILDER_DEFAULT = Path("/usr/local/kubebuilder/bin")

APISERVER_ONLY = ("etcd", "kube-apiserver", "kubectl")
FULL = (*APISERVER_ONLY, "kube-controller-manager", "kube-scheduler", "kwok")
KWOK_STAGES = "kwok-stages.yaml"


def _env_key(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.upper())


def script_bin_dir(script: Path, override_var: str) -> Path | None:
    """``$override_var``, else the bin dir a build script prints for ``--print-bin-dir``.

    Asking the script keeps the versions and cache layout in one place (the script); None
    when there is no override and the script is missing or fails."""
    override = os.environ.get(override_var)
    if override:
        return Path(override)
    if not script.is_file():
        return None
    try:
        out = subprocess.run(
            ["bash", str(script), "--print-bin-dir"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.strip().splitlines()
    return Path(lines[-1]) if lines else None


def cache_bin_dir() -> Path | None:
    """The control-plane build script's cache bin dir (or ``ITL_K8S_BIN_DIR``)."""
    return script_bin_dir(BUILD_SCRIPT, "ITL_K8S_BIN_DIR")


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


@dataclass
class Binaries:
    """Resolved absolute paths of the binaries, plus where each came from (for error messages)."""

    paths: dict[str, Path] = field(default_factory=dict)
    searched: dict[str, list[str]] = field(default_factory=dict)
    cache_dir: Path | None = None

    def get(self, name: str) -> Path:
        """Return the path of *name* or raise ClusterUnavailable listing where we looked."""
        if name in self.paths:
            return self.paths[name]
        where = ", ".join(self.searched.get(name, [])) or "nowhere"
        raise ClusterUnavailable(
            f"binary {name!r} not found (looked in: {where}); "
            f"build it with `bash {BUILD_SCRIPT}` or set ITL_{_env_key(name)}_BIN"
        )

    def require(self, names: tuple[str, ...]) -> None:
        """Raise ClusterUnavailable naming every missing binary at once."""
        missing = [n for n in names if n not in self.paths]
        if missing:
            details = "; ".join(
                f"{n}: looked in {', '.join(self.searched.get(n, [])) or 'nowhere'}"
                for n in missing
            )
            raise ClusterUnavailable(
                f"missing control-plane binaries {missing} ({details}); "
                f"run `bash {BUILD_SCRIPT}` (or `make k8s-binaries`)"
            )

    @property
    def bin_dir(self) -> Path | None:
        """Directory holding kube-apiserver (what tests report as the cluster's bin dir)."""
        api = self.paths.get("kube-apiserver")
        return api.parent if api else self.cache_dir

    def kwok_stages(self) -> Path | None:
        """The kwok Stage file written by build.sh next to the kwok binary (or ITL_KWOK_STAGES)."""
        override = os.environ.get("ITL_KWOK_STAGES")
        if override:
            return Path(override)
        kwok = self.paths.get("kwok")
        candidates = [kwok.parent / KWOK_STAGES] if kwok else []
        if self.cache_dir:
            candidates.append(self.cache_dir / KWOK_STAGES)
        return next((c for c in candidates if c.is_file()), None)


def discover(names: tuple[str, ...] = (*FULL, "helm")) -> Binaries:
    """Resolve every name in *names*; missing ones are recorded, not raised (see ``require``)."""
    found = Binaries(cache_dir=cache_bin_dir())
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    for name in names:
        key = _env_key(name)
        candidates: list[tuple[str, Path]] = []
        for var in (f"ITL_{key}_BIN", f"TEST_ASSET_{key}"):
            if os.environ.get(var):
                candidates.append((f"${var}", Path(os.environ[var])))
        if assets:
            candidates.append(("$KUBEBUILDER_ASSETS", Path(assets) / name))
        if found.cache_dir:
            candidates.append((str(found.cache_dir), found.cache_dir / name))
        candidates.append((str(KUBEBUILDER_DEFAULT), KUBEBUILDER_DEFAULT / name))
        found.searched[name] = [label for label, _ in candidates]
        for _, path in candidates:
            if _is_executable(path):
                found.paths[name] = path.resolve()
                break
    return found
