"""``itl-api`` serves with its start-up objects out of the garbage collector's sight."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from itl_controlplane_sdk.api import __main__ as api_main


def test_a_full_collection_while_serving_skips_the_start_up_objects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What ``create_app`` built is frozen before uvicorn serves: a full collection then walks
    only what requests allocate, instead of pausing every request for the whole app."""
    seen: dict[str, Any] = {}

    def serve(_app: Any, **_: Any) -> None:
        seen["frozen"] = gc.get_freeze_count()
        seen["walked"] = len(gc.get_objects())  # what a full collection walks now

    monkeypatch.setenv("AUTH_MODE", "none")
    monkeypatch.setattr(api_main, "configure_logging", lambda *_, **__: None)
    monkeypatch.setattr(api_main.tracing, "configure", lambda _: False)
    monkeypatch.setattr(api_main.uvicorn, "run", serve)
    try:
        api_main.main([])
        assert seen["frozen"] > 10_000, "the app's start-up objects were not frozen"
        assert seen["walked"] < seen["frozen"] / 10
    finally:
        gc.unfreeze()
