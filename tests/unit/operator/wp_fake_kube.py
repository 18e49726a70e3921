"""An in-memory stand-in for ``workerpool_operator.kube.Kube`` (same methods, dicts in/out)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from workerpool_operator.kube import KubeError

Key = tuple[str, str, str, str]


def _key(obj: Mapping[str, Any]) -> Key:
    meta = obj["metadata"]
    return (obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])


class FakeKube:
    """Objects by (apiVersion, kind, namespace, name); applies replace what was applied."""

    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.secrets: dict[tuple[str, str], set[str]] = {}
        self.statuses: dict[tuple[str, str], dict[str, Any]] = {}
        self.applies: list[Key] = []
        self.status_applies = 0
        self.fail_apply: KubeError | None = None
        self._version = 0

    def _bump(self) -> str:
        self._version += 1
        return str(self._version)

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        found = self.objects.get((api_version, kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def get_like(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        meta = obj["metadata"]
        return await self.get(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])

    async def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        if self.fail_apply is not None:
            raise self.fail_apply
        key = _key(obj)
        self.applies.append(key)
        stored = copy.deepcopy(dict(obj))
        previous = self.objects.get(key)
        if previous is not None:
            old = {k: v for k, v in previous.items() if k != "status"}
            old["metadata"] = {
                k: v for k, v in previous["metadata"].items() if k != "resourceVersion"
            }
            if old == stored:
                return copy.deepcopy(previous)
            stored["status"] = previous.get("status", {})
        stored["metadata"]["resourceVersion"] = self._bump()
        self.objects[key] = stored
        return copy.deepcopy(stored)

    async def apply_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        self.status_applies += 1
        self.statuses[(namespace, name)] = copy.deepcopy(dict(status))
        return {
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": self._bump()},
            "status": copy.deepcopy(dict(status)),
        }

    async def secret_keys(self, namespace: str, name: str) -> set[str] | None:
        return self.secrets.get((namespace, name))

    async def close(self) -> None:
        return None

    # -- test helpers ----------------------------------------------------------------------

    def deployment(self, namespace: str, name: str) -> dict[str, Any]:
        return self.objects[("apps/v1", "Deployment", namespace, name)]

    def kinds(self) -> list[str]:
        return sorted(key[1] for key in self.objects)
