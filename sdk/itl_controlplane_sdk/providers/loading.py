"""Filling a worker's provider registry from configuration.

A worker image is generic; which providers it runs is configuration. Two sources, in order:
``WORKER_PROVIDERS`` (``module:factory`` entries) when set, else every entry point in the
``itl_controlplane_sdk.providers`` group. Each factory receives the registry and registers
its providers, so one package can contribute several resource types.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import cast

from itl_controlplane_sdk.providers.registry import ResourceProviderRegistry

ENTRY_POINT_GROUP = "itl_controlplane_sdk.providers"

ProviderFactory = Callable[[ResourceProviderRegistry], None]


def _import_factory(spec: str) -> ProviderFactory:
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"provider factory {spec!r} must look like 'package.module:function'")
    module = importlib.import_module(module_name)
    try:
        factory = getattr(module, attribute)
    except AttributeError:
        raise ValueError(f"provider factory {spec!r}: {module_name} has no {attribute}") from None
    if not callable(factory):
        raise ValueError(f"provider factory {spec!r} is not callable")
    return cast(ProviderFactory, factory)


def load_providers(registry: ResourceProviderRegistry, factories: Sequence[str] = ()) -> list[str]:
    """Runs the configured factories; returns the names of the sources used."""
    if factories:
        for spec in factories:
            _import_factory(spec)(registry)
        return list(factories)
    used = []
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        cast(ProviderFactory, entry_point.load())(registry)
        used.append(entry_point.value)
    return used
