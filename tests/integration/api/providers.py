"""Example providers under a per-test namespace (``ITL_TEST_NAMESPACE``).

The broker is shared with other tests and benchmarks; binding a test's queue to
``provider.<unique namespace>.#`` means it receives only its own jobs.
"""

from __future__ import annotations

import os

from itl_controlplane_sdk.providers.examples import (
    InMemoryResourceGroupProvider,
    SimulatedWorkProvider,
)
from itl_controlplane_sdk.providers.registry import ResourceProviderRegistry


def register(registry: ResourceProviderRegistry) -> None:
    namespace = os.environ["ITL_TEST_NAMESPACE"]
    registry.register_provider(namespace, "ResourceGroup", InMemoryResourceGroupProvider())
    registry.register_provider(namespace, "Job", SimulatedWorkProvider())
