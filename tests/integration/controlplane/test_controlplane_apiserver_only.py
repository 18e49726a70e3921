"""The apiserver-only mode (etcd + kube-apiserver) serves the API with RBAC and PodSecurity on."""

from __future__ import annotations

import pytest

from localcluster import ApiError, Cluster

pytestmark = pytest.mark.integration


def test_apiserver_only_serves_crud(k8s_apiserver: Cluster) -> None:
    ns = k8s_apiserver.create_namespace()
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}
    k8s_apiserver.api.post(f"/api/v1/namespaces/{ns}/configmaps", body)
    got = k8s_apiserver.api.get(f"/api/v1/namespaces/{ns}/configmaps/c")
    assert got["data"] == {"k": "v"}


def test_apiserver_only_rejects_anonymous_writes(k8s_apiserver: Cluster) -> None:
    anonymous = k8s_apiserver.api.with_token("not-a-valid-token")
    with pytest.raises(ApiError) as err:
        anonymous.get("/api/v1/namespaces")
    assert err.value.status == 401
