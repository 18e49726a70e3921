"""Operator settings from the environment, and the handler backoff."""

from __future__ import annotations

import pytest

from workerpool_operator.settings import OperatorSettings


def test_namespaces_from_a_comma_separated_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKERPOOL_OPERATOR_NAMESPACES", "team-a, team-b")
    monkeypatch.setenv("WORKERPOOL_OPERATOR_DEFAULT_WORKER_IMAGE", "w:9")
    settings = OperatorSettings()
    assert settings.namespaces == ["team-a", "team-b"]
    assert not settings.clusterwide
    assert not settings.namespace_patterns
    assert OperatorSettings(namespaces=["team-*"]).namespace_patterns
    assert settings.default_worker_image == "w:9"


def test_cluster_wide_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKERPOOL_OPERATOR_NAMESPACES", raising=False)
    assert OperatorSettings().clusterwide


def test_backoff_doubles_and_is_capped() -> None:
    handlers = pytest.importorskip("workerpool_operator.handlers")
    assert [handlers.backoff(r) for r in range(8)] == [5, 10, 20, 40, 80, 160, 300, 300]
