"""Security machinery is real: TokenRequest ServiceAccount tokens authenticate, RBAC denies what a
Role does not grant, and PodSecurity admission enforces the ``restricted`` level.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from localcluster import ApiError, Cluster, wait_until

pytestmark = pytest.mark.integration


def _role(namespace: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "List",
            "items": [
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "Role",
                    "metadata": {"name": "pod-reader", "namespace": namespace},
                    "rules": [
                        {
                            "apiGroups": [""],
                            "resources": ["pods"],
                            "verbs": ["get", "list", "watch"],
                        }
                    ],
                },
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "RoleBinding",
                    "metadata": {"name": "reader-reads-pods", "namespace": namespace},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "Role",
                        "name": "pod-reader",
                    },
                    "subjects": [
                        {"kind": "ServiceAccount", "name": "reader", "namespace": namespace}
                    ],
                },
            ],
        }
    )


def test_token_request_token_authenticates_and_rbac_limits_it(
    k8s_cluster: Cluster, k8s_namespace: str
) -> None:
    ns = k8s_namespace
    k8s_cluster.create_service_account(ns, "reader")
    k8s_cluster.kubectl("apply", "-f", "-", input=_role(ns))

    kubeconfig = k8s_cluster.service_account_kubeconfig(ns, "reader")
    whoami = json.loads(
        k8s_cluster.kubectl("auth", "whoami", "-o", "json", kubeconfig=kubeconfig).stdout
    )
    assert whoami["status"]["userInfo"]["username"] == f"system:serviceaccount:{ns}:reader"

    def can_list_pods() -> bool:
        done = k8s_cluster.kubectl("-n", ns, "get", "pods", kubeconfig=kubeconfig, check=False)
        return done.returncode == 0

    # The RBAC authorizer serves from an informer cache: the binding becomes effective shortly.
    wait_until(can_list_pods, timeout=30, what="the RoleBinding to take effect")

    denied = [
        ("-n", ns, "get", "secrets"),
        ("-n", ns, "create", "configmap", "not-granted"),
        ("-n", "default", "get", "pods"),
        ("get", "nodes"),
    ]
    for args in denied:
        done = k8s_cluster.kubectl(*args, kubeconfig=kubeconfig, check=False)
        assert done.returncode != 0, f"kubectl {' '.join(args)} was allowed"
        assert "forbidden" in done.stderr.lower(), done.stderr

    token_client = k8s_cluster.api.with_token(k8s_cluster.create_token(ns, "reader"))
    assert token_client.get(f"/api/v1/namespaces/{ns}/pods")["items"] == []
    with pytest.raises(ApiError) as err:
        token_client.get(f"/api/v1/namespaces/{ns}/secrets")
    assert err.value.status == 403


def test_a_forged_token_is_rejected(k8s_cluster: Cluster) -> None:
    with pytest.raises(ApiError) as err:
        k8s_cluster.api.with_token("eyJhbGciOiJSUzI1NiJ9.e30.forged").get("/api/v1/namespaces")
    assert err.value.status == 401


def _pod(name: str, security: dict[str, object], pod_security: dict[str, object]) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "securityContext": pod_security,
                "containers": [
                    {"name": "c", "image": "itl-fake-worker:1", "securityContext": security}
                ],
            },
        }
    )


def test_restricted_namespace_rejects_a_privileged_pod(k8s_cluster: Cluster) -> None:
    ns = k8s_cluster.create_namespace(labels={"pod-security.kubernetes.io/enforce": "restricted"})
    try:
        with pytest.raises(subprocess.CalledProcessError) as err:
            k8s_cluster.kubectl(
                "-n", ns, "create", "-f", "-", input=_pod("bad", {"privileged": True}, {})
            )
        assert "violates PodSecurity" in err.value.stderr, err.value.stderr
        assert "privileged" in err.value.stderr

        # ...while a pod meeting the restricted profile is admitted: the rejection is policy.
        compliant = _pod(
            "good",
            {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
            {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
        )
        k8s_cluster.kubectl("-n", ns, "create", "-f", "-", input=compliant)
    finally:
        k8s_cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
