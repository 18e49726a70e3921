"""The on-disk record of a running control plane (``<run_dir>/state.json``).

Why: ``python -m localcluster up`` exits while the cluster keeps running; ``down``, ``env`` and
pytest fixtures that reuse a ``make cluster-up`` cluster find it again through this file.  The
well-known run dir of the CLI cluster is ``$ITL_LOCALCLUSTER_DIR``, else
``$XDG_RUNTIME_DIR/itl-localcluster``, else ``/tmp/itl-localcluster-<uid>``.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

FILE = "state.json"


def default_run_dir() -> Path:
    """Where the CLI keeps its cluster (one per user)."""
    if os.environ.get("ITL_LOCALCLUSTER_DIR"):
        return Path(os.environ["ITL_LOCALCLUSTER_DIR"])
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "itl-localcluster"
    return Path(f"/tmp/itl-localcluster-{os.getuid()}")


def write(run_dir: Path, data: dict[str, Any]) -> Path:
    """Atomically (write + rename) record *data*."""
    path = run_dir / FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    return path


def read(run_dir: Path) -> dict[str, Any] | None:
    """The recorded state, or None if there is none (or it is unreadable)."""
    try:
        data: dict[str, Any] = json.loads((run_dir / FILE).read_text())
    except (OSError, ValueError):
        return None
    return data


def clear(run_dir: Path) -> None:
    """Forget the record (the processes must already be stopped)."""
    with contextlib.suppress(FileNotFoundError):
        (run_dir / FILE).unlink()
