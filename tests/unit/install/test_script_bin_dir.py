"""Where the harness finds the binaries a build script caches (control plane, KEDA)."""

from __future__ import annotations

from pathlib import Path

import pytest

from localcluster.binaries import script_bin_dir


def _script(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "build.sh"
    script.write_text(f"#!/usr/bin/env bash\n{body}\n")
    return script


def test_the_bin_dir_is_the_last_line_the_script_prints(tmp_path: Path) -> None:
    script = _script(tmp_path, 'echo "warming up"; echo /cache/tool/v1/bin')
    assert script_bin_dir(script, "ITL_TEST_UNSET_BIN_DIR") == Path("/cache/tool/v1/bin")


def test_the_override_wins_without_running_the_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = _script(tmp_path, "exit 3")
    monkeypatch.setenv("ITL_TEST_BIN_DIR", "/elsewhere/bin")
    assert script_bin_dir(script, "ITL_TEST_BIN_DIR") == Path("/elsewhere/bin")


def test_a_missing_or_failing_script_gives_none(tmp_path: Path) -> None:
    assert script_bin_dir(tmp_path / "absent.sh", "ITL_TEST_UNSET_BIN_DIR") is None
    assert script_bin_dir(_script(tmp_path, "exit 3"), "ITL_TEST_UNSET_BIN_DIR") is None
