"""The operator's one view of every WorkerPool: the latest body, parsed once.

The single WorkerPool watch (``handlers.track_pool``) feeds it; the reconcile runtime
(``runtime.Runtime``) and the autoscaler (``autoscaler.supervisor.Supervisor``) both read it,
so they never disagree about a pool's spec or its defaults. The runtime also records the
bodies its own status writes return, which are fresher than the watch may still deliver.

Pure module: no kopf, no Kubernetes client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from workerpool_operator import api

PoolKey = tuple[str, str]
"""(namespace, name) of a WorkerPool."""

EventPoster = Callable[[Mapping[str, Any], str, str, str], None]
"""post(pool_body, type, reason, message): records a Kubernetes Event on the pool."""

_HEAVY_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def pool_key(body: Mapping[str, Any]) -> PoolKey:
    meta = body["metadata"]
    return (str(meta.get("namespace")), str(meta["name"]))


def _slim(body: Mapping[str, Any]) -> dict[str, Any]:
    """A plain copy of a pool body without managedFields and kubectl's last-applied copy.

    Both are large, and the cache keeps one body per pool for the operator's lifetime.
    """
    meta = {k: v for k, v in body["metadata"].items() if k != "managedFields"}
    annotations = meta.get("annotations")
    if annotations:
        meta["annotations"] = {k: v for k, v in annotations.items() if k not in _HEAVY_ANNOTATIONS}
    return {**body, "metadata": meta}


@dataclass(frozen=True)
class CachedPool:
    """A pool's latest body and its parsed form (None when the spec is not valid)."""

    body: dict[str, Any]
    pool: api.WorkerPool | None

    @property
    def deleting(self) -> bool:
        return bool(self.body["metadata"].get("deletionTimestamp"))

    @property
    def autoscaled(self) -> bool:
        return self.pool is not None and self.pool.spec.autoscaling.enabled


def _parse(body: dict[str, Any]) -> CachedPool:
    try:
        return CachedPool(body, api.parse_pool(body))
    except ValidationError:
        return CachedPool(body, None)


class PoolCache:
    """Latest body of every pool, keyed by (namespace, name)."""

    def __init__(self) -> None:
        self._pools: dict[PoolKey, CachedPool] = {}

    def __len__(self) -> int:
        return len(self._pools)

    def __iter__(self) -> Iterator[PoolKey]:
        return iter(list(self._pools))

    def get(self, key: PoolKey) -> CachedPool | None:
        return self._pools.get(key)

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> PoolKey:
        """One watch event: keep the body (None/ADDED/MODIFIED) or forget the pool (DELETED)."""
        key = pool_key(body)
        if event_type == "DELETED":
            self._pools.pop(key, None)
        else:
            self.remember(body, known_only=False)
        return key

    def remember(self, body: Mapping[str, Any] | None, *, known_only: bool = True) -> None:
        """Keep ``body`` unless the cached one is newer.

        Our own status writes return fresher bodies than the watch may still deliver, so an
        older watch event must not replace them. resourceVersions are compared as integers
        (what etcd-backed servers use); anything else is simply taken as newer.
        """
        if not body or "metadata" not in body:
            return
        key = pool_key(body)
        cached = self._pools.get(key)
        if cached is None and known_only:
            return  # deleted meanwhile: never resurrect a pool from our own write
        if cached is not None and cached.body["metadata"].get("uid") == body["metadata"].get("uid"):
            old = str(cached.body["metadata"].get("resourceVersion", ""))
            new = str(body["metadata"].get("resourceVersion", ""))
            if old.isdigit() and new.isdigit() and int(new) < int(old):
                return
        self._pools[key] = _parse(_slim(body))
