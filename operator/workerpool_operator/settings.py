"""The operator's own configuration, read from ``WORKERPOOL_OPERATOR_*`` variables.

Loaded once at startup and handed to handlers through the Kopf memo (no import-time global),
so tests build it with keyword arguments. ``docs/workerpool.md`` lists every variable.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from itl_controlplane_sdk.contract.tls import BrokerTlsSettings

DEFAULT_WORKER_IMAGE = "itl-controlplane-worker:0.1.0"


class OperatorSettings(BrokerTlsSettings, BaseSettings):
    """Settings of one operator process."""

    model_config = SettingsConfigDict(env_prefix="WORKERPOOL_OPERATOR_", extra="ignore")

    namespaces: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Namespaces to watch, comma-separated (globs allowed). Empty: all "
        "namespaces (cluster-wide).",
    )
    default_worker_image: str = Field(
        default=DEFAULT_WORKER_IMAGE,
        min_length=1,
        description="Worker image for pools that do not set spec.image.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Operator log level."
    )
    log_format: Literal["plain", "full", "json"] = Field(
        default="full", description="Kopf log format: plain, full (with object refs) or json."
    )
    metrics_port: int = Field(
        default=9090, ge=0, le=65535, description="Prometheus /metrics port; 0 disables it."
    )
    health_port: int = Field(
        default=8080,
        ge=0,
        le=65535,
        description="Port of Kopf's liveness endpoint /healthz; 0 disables it.",
    )
    bind_address: str = Field(
        default="0.0.0.0", description="Address the metrics and liveness servers listen on."
    )
    resync_seconds: float = Field(
        default=300.0,
        ge=0,
        description="Every pool is re-checked this often even without events (safety net "
        "against missed watch events); 0 disables the resync.",
    )
    max_concurrent_reconciles: int = Field(
        default=50,
        ge=1,
        le=1000,
        description="Reconciles running at once; a burst of new pools queues beyond this, "
        "which bounds memory and API-server load without slowing steady state. A reconcile "
        "mostly waits for the API server, so this is how many of those waits overlap: at 10, "
        "1000 new pools took 344 s to get their Deployments on a loaded control plane.",
    )
    peering_name: str | None = Field(
        default=None,
        description="Kopf peering object for HA (several replicas, one active). Unset: "
        "standalone. Replicas need distinct priorities.",
    )
    priority: int = Field(default=0, description="Kopf peering priority of this replica.")
    peering_lifetime: int = Field(
        default=60,
        ge=5,
        le=3600,
        description="Seconds a replica's peering keep-alive stays valid. A standby takes over "
        "this long (at most) after the active replica dies without a clean exit; replicas "
        "refresh their keep-alive 5-10 s before it runs out.",
    )

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        """Lists come from the environment as comma-separated text."""
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

    @property
    def namespace_patterns(self) -> bool:
        """True when a namespace is a glob (Kopf must then watch namespaces to resolve it)."""
        return any(set(name) & set("*?[!") for name in self.namespaces)
