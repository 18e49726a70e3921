"""Command lines of the control-plane components.

Why a module of its own: the flags are the part most likely to change between Kubernetes releases;
keeping them together (and free of process management) makes a version bump a one-file review.
Flags follow controller-runtime's envtest and kwokctl's binary runtime, bound to 127.0.0.1 only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .pki import FRONT_PROXY_USER, Pki

SERVICE_CIDR = "10.0.0.0/16"
"""Room for 65 000 ClusterIP Services (a /24 holds 254, which capped the local control plane
at about 250 pools while every WorkerPool had a Service of its own). The first address
(10.0.0.1) is the apiserver's ``kubernetes`` Service, which its serving certificate names
(``pki``)."""
POD_CIDR = "10.244.0.0/16"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
HEALTH_PATHS = "/healthz,/readyz,/livez,/metrics"
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Layout:
    """Where one run keeps its files and which ports it uses."""

    run_dir: Path
    pki: Pki
    etcd_client_port: int
    etcd_peer_port: int
    apiserver_port: int
    kcm_port: int
    scheduler_port: int

    @property
    def admin_kubeconfig(self) -> Path:
        return self.run_dir / "admin.kubeconfig"

    @property
    def logs(self) -> Path:
        return self.run_dir / "logs"

    @property
    def etcd_url(self) -> str:
        return f"http://{HOST}:{self.etcd_client_port}"

    @property
    def server(self) -> str:
        return f"https://{HOST}:{self.apiserver_port}"


def etcd(binary: Path, lay: Layout) -> list[str]:
    """Single-member etcd; fsync off because the data is disposable and fsync dominates latency."""
    peer = f"http://{HOST}:{lay.etcd_peer_port}"
    return [
        str(binary),
        "--name=default",
        f"--data-dir={lay.run_dir / 'etcd'}",
        f"--listen-client-urls={lay.etcd_url}",
        f"--advertise-client-urls={lay.etcd_url}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=default={peer}",
        "--initial-cluster-state=new",
        "--unsafe-no-fsync",
        "--logger=zap",
        "--log-level=warn",
    ]


def kube_apiserver(binary: Path, lay: Layout, *, with_controllers: bool) -> list[str]:
    """API server with RBAC, client-cert auth, SA token signing and default admission plugins.

    Without kube-controller-manager nothing creates the ``default`` ServiceAccount, so (like
    envtest) the ServiceAccount admission plugin is disabled in apiserver-only mode; PodSecurity
    stays on.
    """
    p = lay.pki
    argv = [
        str(binary),
        f"--etcd-servers={lay.etcd_url}",
        f"--bind-address={HOST}",
        f"--advertise-address={HOST}",
        f"--secure-port={lay.apiserver_port}",
        f"--cert-dir={p.dir}",
        f"--tls-cert-file={p.serving_crt}",
        f"--tls-private-key-file={p.serving_key}",
        f"--client-ca-file={p.ca_crt}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--allow-privileged=true",
        "--authorization-mode=RBAC",
        f"--service-account-issuer={SA_ISSUER}",
        f"--service-account-key-file={p.sa_pub}",
        f"--service-account-signing-key-file={p.sa_key}",
        # Aggregation layer / requestheader auth, as kubeadm sets it up: lets KCM and the scheduler
        # load the extension-apiserver-authentication CA and APIService backends authenticate us.
        f"--requestheader-client-ca-file={p.ca_crt}",
        f"--requestheader-allowed-names={FRONT_PROXY_USER}",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={p.front_proxy_crt}",
        f"--proxy-client-key-file={p.front_proxy_key}",
        # Loopback endpoints for the `kubernetes` Service are rejected; nothing here needs them.
        "--endpoint-reconciler-type=none",
        "--profiling=false",
        "--v=1",
    ]
    if not with_controllers:
        argv.append("--disable-admission-plugins=ServiceAccount")
    return argv


def _controller_common(lay: Layout, port: int, cert_dir: Path) -> list[str]:
    kc = lay.admin_kubeconfig
    return [
        f"--kubeconfig={kc}",
        f"--authentication-kubeconfig={kc}",
        f"--authorization-kubeconfig={kc}",
        f"--bind-address={HOST}",
        f"--secure-port={port}",
        f"--cert-dir={cert_dir}",
        f"--authorization-always-allow-paths={HEALTH_PATHS}",
        "--leader-elect=false",
        "--profiling=false",
        "--v=1",
    ]


def kube_controller_manager(binary: Path, lay: Layout) -> list[str]:
    """All default controllers (Deployments, GC, namespaces, ServiceAccounts, node lifecycle...)."""
    p = lay.pki
    return [
        str(binary),
        *_controller_common(lay, lay.kcm_port, lay.run_dir / "kcm"),
        f"--root-ca-file={p.ca_crt}",
        f"--service-account-private-key-file={p.sa_key}",
        f"--cluster-signing-cert-file={p.ca_crt}",
        f"--cluster-signing-key-file={p.ca_key}",
    ]


def kube_scheduler(binary: Path, lay: Layout) -> list[str]:
    """Default scheduler profile; legacy flags are still honoured in 1.37."""
    return [str(binary), *_controller_common(lay, lay.scheduler_port, lay.run_dir / "scheduler")]


def kwok(binary: Path, lay: Layout, stages: Path) -> list[str]:
    """kwok managing every Node, so the one fake node gets heartbeats and its pods go Running."""
    return [
        str(binary),
        f"--kubeconfig={lay.admin_kubeconfig}",
        "--manage-all-nodes=true",
        "--node-lease-duration-seconds=40",
        f"--cidr={POD_CIDR}",
        "--node-ip=10.0.0.250",
        f"--config={stages}",
        "--v=INFO",
    ]


def fake_node(name: str) -> dict[str, object]:
    """A Node kwok will manage; no kwok taint, so workloads schedule without tolerations."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node-role.kubernetes.io/agent": "",
                "type": "kwok",
            },
        },
        "status": {
            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
        },
    }
