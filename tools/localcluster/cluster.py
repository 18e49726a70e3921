"""The test-facing handle of a running cluster (local or an existing test cluster).

Why one type for both: tests should not care whether the API server was started by the harness,
by ``make cluster-up`` or is an existing kind/kwok cluster; they get a kubeconfig, the server URL,
the binaries, ``kubectl``/``helm`` runners and ServiceAccount helpers.
"""

from __future__ import annotations

import base64
import os
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import kubeconfig, process
from .binaries import Binaries
from .kubeapi import KubeClient
from .waiting import wait_until


@dataclass
class Cluster:
    """A reachable cluster and admin credentials for it.

    Attributes:
        kubeconfig: admin kubeconfig path (JSON, credentials inlined).
        server: API server URL, e.g. ``https://127.0.0.1:41234``.
        bin_dir: directory of the control-plane binaries (None if unknown, e.g. existing cluster).
        mode: ``full`` (controllers + kwok node), ``apiserver`` (etcd + apiserver only) or
            ``existing``.
        run_dir: scratch directory of this run (token kubeconfigs, helm state, logs).
    """

    kubeconfig: Path
    server: str
    bin_dir: Path | None
    binaries: Binaries
    mode: str
    run_dir: Path
    pids: dict[str, int] = field(default_factory=dict)
    startup_seconds: float | None = None
    _api: KubeClient | None = field(default=None, repr=False)
    _has_controllers: bool | None = field(default=None, repr=False)

    # -- access --------------------------------------------------------------------------
    @property
    def api(self) -> KubeClient:
        """Admin REST client (stdlib), lazily built from the kubeconfig."""
        if self._api is None:
            self._api = KubeClient.from_kubeconfig(self.kubeconfig)
        return self._api

    @property
    def has_controllers(self) -> bool:
        """True when kube-controller-manager runs (Deployments, GC, ServiceAccounts...).

        Known for clusters we started; for an existing cluster, inferred once from the presence
        of ``default/default`` ServiceAccount, which only the controller-manager creates.
        """
        if self.mode != "existing":
            return self.mode == "full"
        if self._has_controllers is None:
            sa = "/api/v1/namespaces/default/serviceaccounts/default"
            self._has_controllers = self.api.get_or_none(sa) is not None
        return self._has_controllers

    def env(self, kubeconfig_path: Path | None = None) -> dict[str, str]:
        """A copy of os.environ pointing KUBECONFIG (and helm's dirs) at this cluster."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(kubeconfig_path or self.kubeconfig)
        helm_home = self.run_dir / "helm"
        env.setdefault("HELM_CACHE_HOME", str(helm_home / "cache"))
        env.setdefault("HELM_CONFIG_HOME", str(helm_home / "config"))
        env.setdefault("HELM_DATA_HOME", str(helm_home / "data"))
        return env

    def _run(
        self,
        binary: str,
        args: tuple[str, ...],
        *,
        check: bool,
        input: str | None,
        timeout: float,
        kubeconfig_path: Path | None,
        extra_env: Mapping[str, str] | None,
    ) -> subprocess.CompletedProcess[str]:
        env = self.env(kubeconfig_path)
        env.update(extra_env or {})
        return subprocess.run(
            [str(self.binaries.get(binary)), *args],
            env=env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def kubectl(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        timeout: float = 60,
        kubeconfig: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the kubectl built with the server (no version skew) against this cluster.

        ``check=True`` raises CalledProcessError whose ``stderr`` holds kubectl's message.
        """
        full = ("--kubeconfig", str(kubeconfig or self.kubeconfig), *args)
        return self._run(
            "kubectl", full, check=check, input=input, timeout=timeout,
            kubeconfig_path=kubeconfig, extra_env=env,
        )  # fmt: skip

    def helm(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 120,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the cached helm with KUBECONFIG and private helm dirs under the run dir."""
        return self._run(
            "helm", args, check=check, input=None, timeout=timeout,
            kubeconfig_path=None, extra_env=env,
        )  # fmt: skip

    # -- namespaces and identities -------------------------------------------------------
    def create_namespace(
        self, name: str | None = None, labels: Mapping[str, str] | None = None
    ) -> str:
        """Create a namespace (random ``t-…`` name by default) and return its name.

        With controllers running, also wait for its ``default`` ServiceAccount so Pods can be
        admitted immediately (the ServiceAccount admission plugin rejects them until then).
        """
        name = name or f"t-{uuid.uuid4().hex[:10]}"
        meta: dict[str, Any] = {"name": name}
        if labels:
            meta["labels"] = dict(labels)
        self.api.post(
            "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}
        )
        if self.has_controllers:
            wait_until(
                lambda: self.api.get_or_none(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
                timeout=60,
                what=f"ServiceAccount {name}/default",
            )
        return name

    def create_service_account(self, namespace: str, name: str) -> dict[str, Any]:
        """Create a ServiceAccount and return the object."""
        body = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}
        result: dict[str, Any] = self.api.post(
            f"/api/v1/namespaces/{namespace}/serviceaccounts", body
        )
        return result

    def create_token(
        self,
        namespace: str,
        service_account: str,
        *,
        expiration_seconds: int = 3600,
        audiences: list[str] | None = None,
    ) -> str:
        """Mint a bound token through the TokenRequest API (what ``kubectl create token`` does)."""
        spec: dict[str, Any] = {"expirationSeconds": expiration_seconds}
        if audiences:
            spec["audiences"] = audiences
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        result = self.api.post(
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token", body
        )
        token: str = result["status"]["token"]
        return token

    def write_token_kubeconfig(
        self, token: str, path: Path | None = None, namespace: str | None = None
    ) -> Path:
        """Write a kubeconfig with this cluster's server and CA and *token* as the user."""
        creds = self.api.creds
        ca = creds.ca_data or b""
        doc = kubeconfig.build(
            name="token-user",
            server=self.server,
            ca_data=base64.b64encode(ca).decode(),
            user={"token": token},
            namespace=namespace,
        )
        if creds.insecure:
            doc["clusters"][0]["cluster"]["insecure-skip-tls-verify"] = True
            del doc["clusters"][0]["cluster"]["certificate-authority-data"]
        path = path or self.run_dir / "kubeconfigs" / f"token-{uuid.uuid4().hex[:8]}.kubeconfig"
        return kubeconfig.write(path, doc)

    def service_account_kubeconfig(
        self, namespace: str, service_account: str, *, expiration_seconds: int = 3600
    ) -> Path:
        """Kubeconfig authenticating as ``system:serviceaccount:<namespace>:<service_account>``."""
        token = self.create_token(namespace, service_account, expiration_seconds=expiration_seconds)
        return self.write_token_kubeconfig(token, namespace=namespace)

    # -- diagnostics ---------------------------------------------------------------------
    def rss_kib(self) -> dict[str, int]:
        """Resident memory per component (KiB), for the harness's own processes only."""
        return {name: process.rss_kib(pid) for name, pid in self.pids.items()}
