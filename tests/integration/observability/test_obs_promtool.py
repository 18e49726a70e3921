"""``promtool test rules`` on the shipped alert rules, with a firing and a quiet case each.

promtool comes from Debian's prometheus package (``tools/prometheus/promtool.sh install``,
part of ``make install``). Missing, it skips on a developer machine and fails under CI=true.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.services import in_ci

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
CASES = HERE / "alerts_test.yaml"
RULES = HERE.parents[2] / "charts" / "workerpool-operator" / "alerts" / "workerpool.rules.yaml"


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        reason = "promtool not installed (run `bash tools/prometheus/promtool.sh install`)"
        if in_ci():
            pytest.fail(f"promtool unavailable under CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    return path


def test_rules_pass_promtool_check(promtool: str) -> None:
    done = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_alerts_fire_and_stay_quiet_as_the_cases_expect(promtool: str) -> None:
    done = subprocess.run(
        [promtool, "test", "rules", str(CASES)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=HERE,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    alerts = {
        rule["alert"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
    }
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(CASES.read_text())["tests"]:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert firing == alerts, f"no firing case for {sorted(alerts - firing)}"
    assert quiet == alerts, f"no quiet case for {sorted(alerts - quiet)}"
