"""The one generator: every file derived from the code (``make generate``, ``--check``).

Library modules render text (``workerpool_operator.crd``, ``.docs``, ``.install``); this
script alone decides where it goes and writes it:

* the WorkerPool CRD in ``crds/`` and its byte-identical copies in the chart's ``crds/`` (Helm
  installs that directory untemplated) and in ``manifests/install/`` (kustomize refuses files
  outside the kustomization's directory);
* the generated field reference inside ``docs/workerpool.md``;
* the RBAC rules of ``rbac.py`` as the chart's ``_rbac_rules.tpl`` and the kustomize install's
  ``rbac.yaml``.

``--check`` writes nothing and exits 1 naming every stale file; ``make lint`` runs it.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from workerpool_operator import crd, docs, install

ROOT = Path(__file__).resolve().parent.parent
CHART = Path("charts") / "workerpool-operator"
INSTALL = Path("manifests") / "install"
DOC_PAGE = Path("docs") / "workerpool.md"


def app_version(root: Path) -> str:
    """``appVersion`` of the chart: the version label and image tags of the install."""
    chart = (root / CHART / "Chart.yaml").read_text()
    match = re.search(r'^appVersion:\s*"?([^"\s]+)"?\s*$', chart, re.M)
    if match is None:
        raise SystemExit(f"{CHART}/Chart.yaml has no appVersion")
    return match.group(1)


def outputs(root: Path) -> dict[Path, str]:
    """Every generated file, relative path -> exact text."""
    crd_text = crd.render_crd()
    rules = install.read_rules()
    return {
        Path("crds") / crd.CRD_FILE_NAME: crd_text,
        CHART / "crds" / crd.CRD_FILE_NAME: crd_text,
        INSTALL / crd.CRD_FILE_NAME: crd_text,
        DOC_PAGE: docs.render_page((root / DOC_PAGE).read_text()),
        CHART / "templates" / "_rbac_rules.tpl": install.render_rules_template(rules),
        INSTALL / "rbac.yaml": install.render_install_rbac(
            rules, install.standard_labels(app_version(root))
        ),
    }


def stale(root: Path) -> dict[Path, str]:
    """The outputs whose file is missing or differs."""
    return {
        relative: text
        for relative, text in outputs(root).items()
        if not (root / relative).exists() or (root / relative).read_text() != text
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="write nothing; fail when stale")
    args = parser.parse_args(argv)
    changed = stale(ROOT)
    if args.check:
        for relative in changed:
            print(f"{relative} is stale: run `make generate`", file=sys.stderr)
        return 1 if changed else 0
    for relative, text in changed.items():
        path = ROOT / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {relative}")
    if not changed:
        print("generated files are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
