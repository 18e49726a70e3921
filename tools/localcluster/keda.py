"""KEDA's operator and metrics API server as local processes next to a ``LocalCluster``.

Why: the autoscaler is compared with KEDA on the same control plane, broker and workers,
and this machine runs no containers. ``tools/keda/build.sh`` builds both binaries from the
Go module proxy and copies KEDA's own CRDs next to them. Here they run out of cluster with
the admin kubeconfig, wired the way KEDA's manifests wire them in a cluster:

* one certificate (signed by the cluster CA, server and client use, SANs for 127.0.0.1 and
  the metrics Service name) serves the operator's gRPC metrics service, authenticates the
  metrics server to it (mutual TLS, both read ``ca.crt``/``tls.crt``/``tls.key`` from one
  directory) and serves the metrics server's HTTPS API;
* the aggregation layer (requestheader CA and front-proxy client cert, set up by
  ``components.kube_apiserver``) routes ``external.metrics.k8s.io`` to the metrics server
  through an APIService whose Service is an ExternalName for ``localhost``, the one kind of
  Service the apiserver resolves without a pod network;
* KEDA's cert rotation and webhook/APIService patching are off: the harness owns the certs.

The HPA controller of kube-controller-manager (on by default) then reads KEDA's metrics like
in a real cluster; its sync period is a controller-manager flag (``LocalCluster``'s
``extra_args``).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import ports, process
from .binaries import script_bin_dir
from .cluster import Cluster
from .controlplane import LocalCluster, start_timeout
from .errors import ClusterUnavailable, ComponentFailed
from .waiting import StopWaiting, wait_until

BUILD_SCRIPT = Path(__file__).resolve().parent.parent / "keda" / "build.sh"
NAMESPACE = "keda"
METRICS_SERVICE = "keda-metrics-apiserver"
API_SERVICE = "v1beta1.external.metrics.k8s.io"
BINARIES = ("keda", "keda-adapter", "keda-crds.yaml")


def bin_dir() -> Path:
    """``ITL_KEDA_BIN_DIR`` or the build script's cache dir; raises if KEDA is not built."""
    found = script_bin_dir(BUILD_SCRIPT, "ITL_KEDA_BIN_DIR")
    if found is None:
        raise ClusterUnavailable(f"cannot ask `bash {BUILD_SCRIPT} --print-bin-dir` for KEDA")
    missing = [name for name in BINARIES if not (found / name).is_file()]
    if missing:
        raise ClusterUnavailable(
            f"KEDA {missing} not found in {found}; build them with `bash {BUILD_SCRIPT}`"
        )
    return found


class Keda:
    """KEDA's operator and metrics server for one running ``LocalCluster``."""

    def __init__(self, local: LocalCluster, binaries: Path | None = None) -> None:
        if local.cluster is None or local.layout is None:
            raise ValueError("start the LocalCluster first")
        self.local = local
        self.cluster = local.cluster
        self.bin = binaries or bin_dir()
        self.dir = local.run_dir / "keda"
        self.components: list[process.Component] = []

    def start(self) -> None:
        """Install the CRDs, the metrics APIService and both processes; wait until KEDA serves
        external metrics through the aggregation layer."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        kubectl = self.cluster.kubectl
        kubectl("apply", "--server-side", "-f", str(self.bin / "keda-crds.yaml"), timeout=120)
        for crd in ("scaledobjects.keda.sh", "triggerauthentications.keda.sh"):
            # Not `kubectl wait`: it fails at once ("conditions accessor error") while a CRD
            # just applied has no status.conditions yet.
            wait_until(_established(self.cluster, crd), timeout=60, what=f"CRD {crd} Established")
        if self.cluster.api.get_or_none(f"/api/v1/namespaces/{NAMESPACE}") is None:
            self.cluster.create_namespace(NAMESPACE)
        certs = self._certificates()
        grpc_port, https_port, metrics_port, health_port, adapter_metrics = ports.free_ports(5)
        env = {
            **os.environ,
            "KUBECONFIG": str(self.cluster.kubeconfig),
            "WATCH_NAMESPACE": "",
            "POD_NAMESPACE": NAMESPACE,
            "KEDA_CLUSTER_OBJECT_NAMESPACE": NAMESPACE,
            "OPERATOR_NAME": "keda-operator",
        }
        ca_dir = self.dir / "custom-ca"
        ca_dir.mkdir(parents=True, exist_ok=True)
        kubeconfig = str(self.cluster.kubeconfig)
        operator = self._spawn(
            "keda-operator",
            [
                str(self.bin / "keda"),
                f"--kubeconfig={kubeconfig}",
                f"--metrics-bind-address=127.0.0.1:{metrics_port}",
                f"--health-probe-bind-address=127.0.0.1:{health_port}",
                f"--metrics-service-bind-address=127.0.0.1:{grpc_port}",
                f"--cert-dir={certs}",
                f"--ca-dir={ca_dir}",
                "--enable-cert-rotation=false",
                "--enable-webhook-patching=false",
                "--enable-apiservice-patching=false",
                "--leader-elect=false",
                "--zap-log-level=info",
            ],
            env,
        )
        adapter = self._spawn(
            "keda-metrics-apiserver",
            [
                str(self.bin / "keda-adapter"),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                f"--lister-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={https_port}",
                f"--cert-dir={certs}",
                f"--tls-cert-file={certs / 'tls.crt'}",
                f"--tls-private-key-file={certs / 'tls.key'}",
                f"--metrics-service-address=127.0.0.1:{grpc_port}",
                f"--port={adapter_metrics}",
                "--zap-log-level=info",
            ],
            env,
        )
        self._register_api_service(https_port)

        def serving() -> bool:
            for component in (operator, adapter):
                try:
                    component.check_alive()
                except ComponentFailed as exc:
                    raise StopWaiting(str(exc)) from exc
            found = self.cluster.api.get_or_none(
                f"/apis/apiregistration.k8s.io/v1/apiservices/{API_SERVICE}"
            )
            conditions = ((found or {}).get("status") or {}).get("conditions") or []
            return any(
                c.get("type") == "Available" and c.get("status") == "True" for c in conditions
            )

        wait_until(serving, timeout=start_timeout(), what="KEDA's external metrics APIService")

    def _certificates(self) -> Path:
        """``ca.crt``/``tls.crt``/``tls.key`` in one directory, as KEDA's processes read them."""
        assert self.local.layout is not None
        the_pki = self.local.layout.pki
        crt, key = the_pki.issue(
            "keda",
            "/CN=keda",
            [
                "basicConstraints=CA:FALSE",
                "keyUsage=critical,digitalSignature,keyEncipherment",
                "extendedKeyUsage=serverAuth,clientAuth",
                "subjectAltName=IP:127.0.0.1,DNS:localhost,"
                f"DNS:{METRICS_SERVICE}.{NAMESPACE}.svc,"
                f"DNS:{METRICS_SERVICE}.{NAMESPACE}.svc.cluster.local",
            ],
        )
        certs = self.dir / "certs"
        certs.mkdir(parents=True, exist_ok=True)
        (certs / "ca.crt").write_bytes(the_pki.ca_crt.read_bytes())
        (certs / "tls.crt").write_bytes(crt.read_bytes())
        (certs / "tls.key").write_bytes(key.read_bytes())
        (certs / "tls.key").chmod(0o600)
        return certs

    def _register_api_service(self, port: int) -> None:
        assert self.local.layout is not None
        service: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": METRICS_SERVICE, "namespace": NAMESPACE},
            "spec": {"type": "ExternalName", "externalName": "localhost"},
        }
        api_service: dict[str, Any] = {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": API_SERVICE},
            "spec": {
                "group": "external.metrics.k8s.io",
                "version": "v1beta1",
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
                "service": {"name": METRICS_SERVICE, "namespace": NAMESPACE, "port": port},
                "caBundle": base64.b64encode(self.local.layout.pki.ca_crt.read_bytes()).decode(),
            },
        }
        manifest = "\n---\n".join(json.dumps(doc) for doc in (service, api_service))
        self.cluster.kubectl(
            "apply", "--server-side", "--force-conflicts", "-f", "-", input=manifest
        )

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> process.Component:
        component = process.start(
            name, argv, self.dir / "logs" / f"{name}.log", env=env, tie_to_parent=True
        )
        self.components.append(component)
        return component

    def stop(self) -> None:
        """Stop both processes (the cluster's own teardown removes the rest)."""
        for component in reversed(self.components):
            process.stop(component, marker=str(self.local.run_dir))
        self.components.clear()

    def logs(self) -> dict[str, str]:
        """Log tails of both processes, for error reports."""
        return {c.name: c.log_tail() for c in self.components}


def _established(cluster: Cluster, name: str) -> Callable[[], bool]:
    def probe() -> bool:
        body = cluster.api.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        conditions = (body.get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)

    return probe
