"""The Kubernetes adapter: get, server-side apply and status apply on plain dicts.

The only module that talks to the API server on the operator's behalf (Kopf runs its own
watches). Objects go in and come out as plain dicts, like the builders produce them, so the
client library's generated models never leak into the rest of the operator. Its exceptions
are translated into this module's small hierarchy (kopf's ``clients/errors.py`` rationale:
the transport may change, callers should not care)::

    KubeError
     +-- NotFound          404
     +-- Conflict          409 (an apply conflict even with force, or a stale write)
     +-- Unavailable       network errors, timeouts, 429 and 5xx: retry later

Every write is a server-side apply (``application/apply-patch+yaml``) with the field manager
``workerpool-operator`` and ``force=true``: the operator owns the fields it sets, a field it
stops setting is removed, and fields others own (another manager's conditions, an HPA's
annotations) are left alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from workerpool_operator import api
from workerpool_operator.labels import FIELD_MANAGER

APPLY_CONTENT_TYPE = "application/apply-patch+yaml"

_PLURALS: dict[tuple[str, str], str] = {
    ("apps/v1", "Deployment"): "deployments",
    ("v1", "Secret"): "secrets",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    (api.API_VERSION, api.KIND): api.PLURAL,
}


class KubeError(Exception):
    """The API server refused a request or could not be reached."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class NotFound(KubeError):
    pass


class Conflict(KubeError):
    pass


class Unavailable(KubeError):
    pass


def object_path(
    api_version: str, kind: str, namespace: str, name: str, subresource: str | None = None
) -> str:
    """REST path of a namespaced object (core group under /api, the rest under /apis)."""
    plural = _PLURALS[(api_version, kind)]
    root = "/api" if "/" not in api_version else "/apis"
    path = f"{root}/{api_version}/namespaces/{namespace}/{plural}/{name}"
    return f"{path}/{subresource}" if subresource else path


def _translate(exc: ApiException) -> KubeError:
    status = int(exc.status or 0)
    message = str(exc.reason or "")
    reason = message
    try:
        payload = json.loads(exc.body) if exc.body else {}
        message = payload.get("message", message)
        reason = payload.get("reason", reason)
    except (TypeError, ValueError):
        pass
    if status == 404:
        return NotFound(status, reason, message)
    if status == 409:
        return Conflict(status, reason, message)
    if status == 429 or status >= 500:
        return Unavailable(status, reason, message)
    return KubeError(status, reason, message)


async def load_configuration() -> client.Configuration:
    """In-cluster service account if present, else the kubeconfig (KUBECONFIG or ~/.kube)."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        await config.load_kube_config(client_configuration=configuration)
    return configuration


class KubeAPI(Protocol):
    """What ``reconcile`` needs from the API server (``Kube``, or a fake in unit tests)."""

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None: ...

    async def get_like(self, obj: Mapping[str, Any]) -> dict[str, Any] | None: ...

    async def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]: ...

    async def apply_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]: ...

    async def secret_keys(self, namespace: str, name: str) -> set[str] | None: ...

    async def close(self) -> None: ...


class Kube:
    """Dict-in, dict-out access to the objects the operator manages."""

    def __init__(self, api_client: client.ApiClient, *, field_manager: str = FIELD_MANAGER):
        self._api = api_client
        self.field_manager = field_manager

    @property
    def api_client(self) -> client.ApiClient:
        return self._api

    @classmethod
    async def connect(cls, *, connections: int = 64) -> Kube:
        """A client from the ambient configuration with ``connections`` pooled connections
        (the library's default of 5 per CPU starves a burst of reconciles on small nodes).
        One request per connection at a time: up to 50 reconciles, each applying its
        children at once, and the autoscaler's writes share them."""
        configuration = await load_configuration()
        configuration.connection_pool_maxsize = connections
        return cls(client.ApiClient(configuration))

    async def close(self) -> None:
        await self._api.close()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            result = await self._api.call_api(
                path,
                method,
                query_params=query or [],
                header_params=headers,
                body=body,
                response_types_map={200: "object", 201: "object"},
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
            )
        except ApiException as exc:
            raise _translate(exc) from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise Unavailable(0, type(exc).__name__, str(exc) or repr(exc)) from exc
        return dict(result or {})

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        """The live object, or None when it does not exist."""
        try:
            return await self._request("GET", object_path(api_version, kind, namespace, name))
        except NotFound:
            return None

    async def discovers(self, api_version: str, plural: str) -> bool:
        """Whether API discovery lists ``plural`` in ``api_version`` (group list included).

        Discovery lags a CRD's Established condition by a moment; an operator that scans
        discovery in that moment would not watch the resource until something else changes.
        """
        try:
            groups = await self._request("GET", "/apis")
            served = await self._request("GET", f"/apis/{api_version}")
        except (NotFound, Unavailable):
            return False
        versions = {
            version.get("groupVersion")
            for group in groups.get("groups", [])
            for version in group.get("versions", [])
        }
        names = {resource.get("name") for resource in served.get("resources", [])}
        return api_version in versions and plural in names

    async def get_like(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        """The live version of a built object (same apiVersion, kind, namespace, name)."""
        meta = obj["metadata"]
        return await self.get(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])

    async def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply ``obj`` (must carry apiVersion, kind, metadata.name/namespace)."""
        meta = obj["metadata"]
        path = object_path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        return await self._request(
            "PATCH",
            path,
            body=dict(obj),
            query=[("fieldManager", self.field_manager), ("force", "true")],
            content_type=APPLY_CONTENT_TYPE,
        )

    async def apply_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Server-side apply the given WorkerPool status fields (only those are owned)."""
        body = {
            "apiVersion": api.API_VERSION,
            "kind": api.KIND,
            "metadata": {"name": name, "namespace": namespace},
            "status": dict(status),
        }
        path = object_path(api.API_VERSION, api.KIND, namespace, name, "status")
        return await self._request(
            "PATCH",
            path,
            body=body,
            query=[("fieldManager", self.field_manager), ("force", "true")],
            content_type=APPLY_CONTENT_TYPE,
        )

    async def secret_keys(self, namespace: str, name: str) -> set[str] | None:
        """Keys of a Secret (values are not kept), or None when it does not exist."""
        secret = await self.get("v1", "Secret", namespace, name)
        if secret is None:
            return None
        return set(secret.get("data") or {}) | set(secret.get("stringData") or {})
