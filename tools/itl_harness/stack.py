"""The installed stack, driven the way a user drives it: Helm, kubectl, a ServiceAccount token.

Shared by the e2e suite, the install/RBAC integration tests and ``itl_harness.demo_cluster``,
so all three install the chart from this repository the same way:

* :class:`Release` installs, upgrades and uninstalls the chart (values go in as a JSON file,
  which Helm reads as YAML), names what the chart creates, and mints a kubeconfig for the
  chart's ServiceAccount through the TokenRequest API, so a local operator process runs with
  exactly the RBAC the chart grants and never as admin;
* :func:`helm_template` renders the chart without a cluster (for comparisons);
* :func:`can_i` asks ``kubectl auth can-i`` as that identity.

Why the operator may run as a local process: no container runs on the local control plane's
kwok node, so the chart's Deployment there is only admitted and scheduled, and the operator
itself runs next to the tests with the chart's credentials (``tests/integration/operator``'s
``OperatorProcess``). On kind the chart's Deployment is the operator.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from localcluster import ApiError, Cluster, wait_until

REPO = Path(__file__).resolve().parents[2]
"""The repository (the harness is installed from it in editable mode)."""
CHART = REPO / "charts" / "workerpool-operator"
CHART_NAME = "workerpool-operator"
INSTALL_LABEL = "app.kubernetes.io/instance"
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}
"""Namespace labels enforcing the restricted Pod Security Standard (the chart's pod meets it)."""

NAMESPACED_KINDS = {
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "Service": "/api/v1/namespaces/{ns}/services",
    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
}
CLUSTER_KINDS = {
    "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
}


def unique_release() -> str:
    """A release name that contains the chart name, so the chart names objects after it."""
    return f"{CHART_NAME}-{uuid.uuid4().hex[:6]}"


def _helm_env(home: Path) -> dict[str, str]:
    return {
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }


def _values_file(values: Mapping[str, Any], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"values-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps(values, indent=2))
    return path


def kube_version() -> str:
    """The control plane's Kubernetes version (``tools/controlplane/versions.env``).

    ``helm template`` has no server to ask, and a helm built from source assumes v1.20, which
    the chart's ``kubeVersion`` rejects; pass the version the tests run against instead.
    """
    for line in (REPO / "tools" / "controlplane" / "versions.env").read_text().splitlines():
        if line.startswith("K8S_VERSION="):
            return line.split("=", 1)[1].strip()
    raise RuntimeError("K8S_VERSION missing from tools/controlplane/versions.env")


def helm_template(
    helm: Path,
    *,
    release: str = CHART_NAME,
    namespace: str = "workerpool-system",
    values: Mapping[str, Any] | None = None,
    include_crds: bool = True,
) -> list[dict[str, Any]]:
    """``helm template`` of the chart in this repository, parsed (no cluster needed)."""
    with tempfile.TemporaryDirectory(prefix="itl-helm-") as tmp:
        args = [str(helm), "template", release, str(CHART), "--namespace", namespace]
        args += ["--kube-version", kube_version()]
        if include_crds:
            args.append("--include-crds")
        if values:
            args += ["--values", str(_values_file(values, Path(tmp)))]
        done = subprocess.run(
            args,
            env={**os.environ, **_helm_env(Path(tmp))},
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def can_i(
    cluster: Cluster,
    kubeconfig: Path,
    verb: str,
    resource: str,
    namespace: str | None = None,
    *,
    subresource: str | None = None,
) -> bool:
    """``kubectl auth can-i`` as the identity in ``kubeconfig`` (exit 0 yes, 1 no)."""
    args = ["auth", "can-i", verb, resource]
    args += [f"--subresource={subresource}"] if subresource else []
    args += ["--namespace", namespace] if namespace else ["--all-namespaces"]
    done = cluster.kubectl(*args, kubeconfig=kubeconfig, check=False)
    answer = done.stdout.strip()
    if answer not in ("yes", "no"):
        raise AssertionError(f"kubectl auth can-i {verb} {resource}: {done.stderr or answer}")
    return answer == "yes"


@dataclass
class Release:
    """One Helm release of the chart, installed in ``namespace`` of ``cluster``."""

    cluster: Cluster
    name: str
    namespace: str
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def fullname(self) -> str:
        """The chart's ``workerpool-operator.fullname`` for this release (no overrides)."""
        return self.name if CHART_NAME in self.name else f"{self.name}-{CHART_NAME}"

    @property
    def service_account(self) -> str:
        return self.fullname

    def _values_dir(self) -> Path:
        return self.cluster.run_dir / "helm-values"

    def install(self, values: Mapping[str, Any] | None = None, *, timeout: float = 240) -> str:
        """``helm upgrade --install --wait``; return Helm's output (NOTES included)."""
        self.values = dict(values or self.values)
        args = [
            "upgrade",
            "--install",
            self.name,
            str(CHART),
            "--namespace",
            self.namespace,
            "--values",
            str(_values_file(self.values, self._values_dir())),
            "--wait",
            "--timeout",
            f"{int(timeout)}s",
        ]
        try:
            done = self.cluster.helm(*args, timeout=timeout + 30)
        except subprocess.CalledProcessError as exc:
            raise AssertionError(f"helm install failed:\n{exc.stdout}\n{exc.stderr}") from exc
        return done.stdout

    def uninstall(self, *, timeout: float = 120) -> None:
        """``helm uninstall --wait`` (the CRD stays: Helm never deletes ``crds/``)."""
        self.cluster.helm(
            "uninstall", self.name, "--namespace", self.namespace, "--wait",
            "--timeout", f"{int(timeout)}s", timeout=timeout + 30,
        )  # fmt: skip

    def status(self) -> dict[str, Any]:
        done = self.cluster.helm("status", self.name, "--namespace", self.namespace, "-o", "json")
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def operator_kubeconfig(self, *, expiration_seconds: int = 3600) -> Path:
        """A kubeconfig for the chart's ServiceAccount (a TokenRequest token, no admin)."""
        return self.cluster.service_account_kubeconfig(
            self.namespace, self.service_account, expiration_seconds=expiration_seconds
        )

    def leftovers(self, namespaces: list[str]) -> list[str]:
        """Objects labelled with this release that still exist (kind/namespace/name)."""
        selector = f"{INSTALL_LABEL}={self.name}"
        found = []
        for kind, path in CLUSTER_KINDS.items():
            for item in self.cluster.api.get(path, labelSelector=selector)["items"]:
                found.append(f"{kind}/{item['metadata']['name']}")
        for namespace in {self.namespace, *namespaces}:
            for kind, template in NAMESPACED_KINDS.items():
                try:
                    items = self.cluster.api.get(
                        template.format(ns=namespace), labelSelector=selector
                    )["items"]
                except ApiError as exc:
                    if exc.status == 404:
                        continue
                    raise
                found.extend(f"{kind}/{namespace}/{i['metadata']['name']}" for i in items)
        return sorted(found)

    def wait_rollout(self, *, timeout: float = 180) -> None:
        """Wait for the operator Deployment to be available (kwok marks its pod Ready)."""
        self.cluster.kubectl(
            "-n", self.namespace, "rollout", "status", f"deployment/{self.fullname}",
            f"--timeout={int(timeout)}s", timeout=timeout + 30,
        )  # fmt: skip


def create_namespace(cluster: Cluster, prefix: str, *, restricted: bool = True) -> str:
    """A fresh namespace ``<prefix><hex>``, enforcing restricted PSS unless told otherwise."""
    return cluster.create_namespace(
        f"{prefix}{uuid.uuid4().hex[:8]}", RESTRICTED if restricted else None
    )


def delete_namespace(cluster: Cluster, name: str) -> None:
    """Delete a namespace without waiting (its finalization is the cluster's business)."""
    try:
        cluster.api.delete(f"/api/v1/namespaces/{name}")
    except ApiError as exc:
        if exc.status != 404:
            raise


LOCAL_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/"
"""The broker the harness starts (``make rabbitmq-up``), as a pool's Secret names it."""


def put_secret(cluster: Cluster, namespace: str, url: str, name: str = "rabbitmq") -> None:
    """Create or replace the pool's broker Secret (key ``url``, as the samples use)."""
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "Opaque",
        "stringData": {"url": url},
    }
    try:
        cluster.api.post(f"/api/v1/namespaces/{namespace}/secrets", body)
    except ApiError as exc:
        if exc.status != 409:
            raise
        cluster.api.request("PUT", f"/api/v1/namespaces/{namespace}/secrets/{name}", body)


def wait_gone(cluster: Cluster, path: str, *, timeout: float, what: str) -> None:
    wait_until(lambda: cluster.api.get_or_none(path) is None, timeout=timeout, what=what)


def elapsed(since: float) -> float:
    return round(time.monotonic() - since, 1)
