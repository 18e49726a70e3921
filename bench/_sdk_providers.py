"""Provider factory for the SDK worker of the throughput benchmark.

It registers the SDK's own no-op provider (``SimulatedWorkProvider``, shipped as
``ITL.Demo/Job``; an empty body does nothing) under a namespace of its own, ``ITL.Bench``.
The benchmark worker binds ``provider.ITL.Bench.#`` to ``bench.sdk.jobs``: had it bound
``provider.ITL.Demo.#``, it would capture the ``ITL.Demo`` jobs of any test suite running on
the same broker at the same time (a matching binding bypasses the catch-all queue).
"""

from __future__ import annotations

from itl_controlplane_sdk.providers.examples import SimulatedWorkProvider
from itl_controlplane_sdk.providers.registry import ResourceProviderRegistry

NAMESPACE = "ITL.Bench"
RESOURCE_TYPE = "Job"


def register(registry: ResourceProviderRegistry) -> None:
    """``WORKER_PROVIDERS=_sdk_providers:register`` (with ``bench/`` on PYTHONPATH)."""
    registry.register_provider(NAMESPACE, RESOURCE_TYPE, SimulatedWorkProvider())
