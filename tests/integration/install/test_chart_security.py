"""The chart's security options, rendered by the real helm: NetworkPolicies and broker TLS."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from itl_harness import stack
from tests.support.services import REPO
from workerpool_operator.labels import APP_NAME, HEALTH_PORT, LABEL_NAME

CHART = REPO / "charts" / "workerpool-operator"
NAMESPACE = "wp-system"


def template(helm_bin: Path, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return stack.helm_template(
        helm_bin, release="wp", namespace=NAMESPACE, values=values, include_crds=False
    )


def policies(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (doc["metadata"]["namespace"], doc["metadata"]["name"]): doc["spec"]
        for doc in docs
        if doc["kind"] == "NetworkPolicy"
    }


def egress_ports(spec: dict[str, Any]) -> list[set[tuple[str, int]]]:
    return [{(p["protocol"], p["port"]) for p in rule["ports"]} for rule in spec["egress"]]


DNS = {("UDP", 53), ("TCP", 53)}
BROKER = {("TCP", 5672), ("TCP", 5671)}
API_SERVER = {("TCP", 443), ("TCP", 6443)}


def test_no_network_policies_by_default(helm_bin: Path) -> None:
    assert policies(template(helm_bin)) == {}


def test_workers_reach_only_dns_and_the_broker_and_the_operator_also_the_api_server(
    helm_bin: Path,
) -> None:
    docs = template(
        helm_bin,
        {
            "watchNamespaces": ["team-a", "team-b"],
            "networkPolicy": {
                "enabled": True,
                "broker": {"ports": [5672, 5671], "to": [{"ipBlock": {"cidr": "10.1.2.0/24"}}]},
            },
        },
    )
    found = policies(docs)
    assert set(found) == {
        (NAMESPACE, "wp-workerpool-operator"),
        ("team-a", "wp-workerpool-operator-workers"),
        ("team-b", "wp-workerpool-operator-workers"),
    }
    operator = found[(NAMESPACE, "wp-workerpool-operator")]
    deployment = next(doc for doc in docs if doc["kind"] == "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert operator["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert operator["policyTypes"] == ["Ingress", "Egress"]
    assert egress_ports(operator) == [DNS, API_SERVER, BROKER]
    assert operator["egress"][2]["to"] == [{"ipBlock": {"cidr": "10.1.2.0/24"}}]
    assert "to" not in operator["egress"][1]  # the API server: any address on its ports

    workers = found[("team-a", "wp-workerpool-operator-workers")]
    assert workers["podSelector"] == {"matchLabels": {LABEL_NAME: APP_NAME}}
    assert egress_ports(workers) == [DNS, BROKER]
    assert workers["ingress"] == [{"ports": [{"protocol": "TCP", "port": HEALTH_PORT}]}]


def test_worker_namespaces_must_be_names(helm_bin: Path) -> None:
    with pytest.raises(subprocess.CalledProcessError) as failed:
        template(helm_bin, {"networkPolicy": {"enabled": True, "workerNamespaces": ["team-*"]}})
    assert "is a glob" in failed.value.stderr


def test_the_operator_mounts_the_broker_tls_secret(helm_bin: Path) -> None:
    docs = template(helm_bin, {"brokerTLS": {"secretName": "broker-ca", "clientCertificate": True}})
    pod = next(doc for doc in docs if doc["kind"] == "Deployment")["spec"]["template"]["spec"]
    env = {var["name"]: var.get("value") for var in pod["containers"][0]["env"]}
    assert env["RABBITMQ_TLS_CA_FILE"] == "/etc/itl/broker-tls/ca.crt"
    assert env["RABBITMQ_TLS_KEY_FILE"] == "/etc/itl/broker-tls/tls.key"
    volume = next(v for v in pod["volumes"] if v["name"] == "broker-tls")
    assert volume["secret"]["secretName"] == "broker-ca"
    assert volume["secret"]["defaultMode"] == 0o440


def test_helm_lint_strict_with_policies_and_tls(helm_bin: Path, tmp_path: Path) -> None:
    args = [str(helm_bin), "lint", "--strict", str(CHART), "--kube-version", stack.kube_version()]
    for value in (
        "networkPolicy.enabled=true",
        "watchNamespaces={team-a}",
        "brokerTLS.secretName=ca",
    ):
        args += ["--set", value]
    env = {**os.environ, "HELM_CACHE_HOME": str(tmp_path), "HELM_CONFIG_HOME": str(tmp_path)}
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
