"""The ARM-style HTTP API in front of the providers and the worker fleet (extra ``api``).

``create_app`` builds the FastAPI app; ``python -m itl_controlplane_sdk.api`` (``itl-api``)
serves it with uvicorn, configured by ``ApiSettings`` from the environment.
"""

from itl_controlplane_sdk.api.app import create_app
from itl_controlplane_sdk.api.settings import ApiSettings

__all__ = ["ApiSettings", "create_app"]
