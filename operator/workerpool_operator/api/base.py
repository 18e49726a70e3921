"""The WorkerPool API's identity (group, version, kind) and the base of its models.

Python attributes are snake_case; the wire format is camelCase (``alias_generator=to_camel``),
exactly what the API server stores. Pure module.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

GROUP = "controlplane.itlusions.com"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "WorkerPool"
PLURAL = "workerpools"
SINGULAR = "workerpool"
SHORT_NAMES = ("wp",)
CRD_NAME = f"{PLURAL}.{GROUP}"


class Model(BaseModel):
    """Base of every API model: camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
    )


def rules(*rules: tuple[str, str]) -> dict[str, Any]:
    """CEL rules for ``json_schema_extra``: (rule, message) pairs."""
    return {"x-kubernetes-validations": [{"rule": r, "message": m} for r, m in rules]}
