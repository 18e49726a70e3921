"""The request every benchmark job carries, for every system: comparable message sizes.

The no-op jobs ignore it. Standard library only: the peers' client processes import it too.
"""

from __future__ import annotations

from typing import Any

REQUEST: dict[str, Any] = {
    "subscription_id": "bench",
    "resource_group": "bench",
    "provider_namespace": "ITL.Bench",
    "resource_type": "Job",
    "resource_name": "noop",
    "body": {},
}
