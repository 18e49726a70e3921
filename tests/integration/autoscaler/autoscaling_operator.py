"""The pool's broker Secret, for the autoscaler's tests and benchmarks.

The operator process itself is ``wp_operator_process.OperatorProcess`` (``python -m
workerpool_operator`` runs the reconciler and the autoscaler).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "operator"))


from localcluster import ApiError, Cluster  # noqa: E402


def put_secret(cluster: Cluster, namespace: str, url: str, name: str = "rabbitmq") -> None:
    """Create or replace the pool's broker Secret."""
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "stringData": {"url": url},
    }
    try:
        cluster.api.post(f"/api/v1/namespaces/{namespace}/secrets", body)
    except ApiError:
        cluster.api.request("PUT", f"/api/v1/namespaces/{namespace}/secrets/{name}", body)
