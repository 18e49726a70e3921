"""The worker's documented environment matches the settings model (one source of truth)."""

from __future__ import annotations

from pathlib import Path

from itl_controlplane_sdk.contract.settings import WorkerSettings

DOC = Path(__file__).resolve().parents[3] / "docs" / "worker.md"


def test_every_worker_variable_is_documented_and_nothing_else() -> None:
    documented = {
        line.split("|")[1].strip().strip("`")
        for line in DOC.read_text().splitlines()
        if line.startswith("| `") and line.split("|")[1].strip().strip("`").isupper()
    }
    variables = {WorkerSettings.env_name(name) for name in WorkerSettings.model_fields}

    assert documented == variables
