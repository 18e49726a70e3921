"""The one ``ITL.Demo/Job`` request the integration tests submit (the example provider runs it)."""

from __future__ import annotations

from typing import Any

from itl_controlplane_sdk import ResourceRequest


def demo_request(name: str = "job", **body: Any) -> ResourceRequest:
    """A create request for the demo job ``name``; ``body`` is what the job does, e.g.
    ``seconds=0.05``."""
    return ResourceRequest(
        subscription_id="sub-1",
        resource_group="rg-1",
        provider_namespace="ITL.Demo",
        resource_type="Job",
        resource_name=name,
        location="westeurope",
        body=body,
    )
