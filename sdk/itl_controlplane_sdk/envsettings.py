"""The shared shape of the SDK's environment contracts (worker and API server).

Each process reads a pydantic-settings model whose fields name their variable through
``validation_alias``; builders of manifests and charts ask ``env_name`` instead of spelling
variable names, so the model stays the one source of truth.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AliasChoices, BeforeValidator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _split_commas(value: object) -> object:
    """Lists come from the environment as comma-separated text, not JSON."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


CommaList = Annotated[list[str], NoDecode, BeforeValidator(_split_commas)]
"""A list read from a comma-separated variable (``a.b:c, d.e:f``)."""


class EnvSettings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    @classmethod
    def env_name(cls, field_name: str) -> str:
        """The environment variable that sets ``field_name`` (for manifest builders)."""
        alias = cls.model_fields[field_name].validation_alias
        if isinstance(alias, str):
            return alias
        if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
            return alias.choices[0]
        raise KeyError(f"{field_name} has no environment variable")
