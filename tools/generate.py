"""Regenerate every file derived from the WorkerPool models (``make generate``).

Writes the CRD to ``crds/`` and its byte-identical copy to the chart's ``crds/``, the
generated field reference inside ``docs/workerpool.md``, and (through
``tools/generate_install.py``) the install artefacts derived from the CRD and ``rbac.py``.
Unit tests fail when any of these differ from what this script would write, so run it after
changing ``operator/workerpool_operator/api/`` or ``rbac.py``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    from workerpool_operator import crd, docs

    changed = [*crd.write(ROOT), *docs.write(ROOT)]
    # tools/ is on sys.path when run as `python tools/generate.py`.
    install = importlib.import_module("generate_install")
    changed += install.write(ROOT)
    for path in changed:
        print(f"wrote {path.relative_to(ROOT)}")
    if not changed:
        print("generated files are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
