"""Start and stop a local control plane: etcd, kube-apiserver and (full mode) KCM, scheduler, kwok.

Why: the operator must be tested against a real API server and real controllers, on machines with
no container engine.  This module owns the lifecycle only; flags live in ``components``, the
test-facing API in ``cluster``, persistence for the CLI in ``state``.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from . import components, kubeconfig, pki, ports, process, state
from .binaries import APISERVER_ONLY, FULL, Binaries, discover
from .cluster import Cluster
from .errors import ClusterUnavailable, ComponentFailed
from .kubeapi import ApiError, KubeClient
from .waiting import StopWaiting, WaitTimeout, wait_until

MODE_FULL = "full"
MODE_APISERVER = "apiserver"
NODE_NAME = "kwok-node-0"
CONTEXT_NAME = "itl-localcluster"
PORT_ATTEMPTS = 3


def start_timeout() -> float:
    """Per-phase readiness deadline; generous because a cold apiserver on 2 busy cores is slow."""
    return float(os.environ.get("ITL_LOCALCLUSTER_START_TIMEOUT", "180"))


def _healthz_ok(port: int) -> bool:
    """Anonymous GET /healthz on a component's self-signed secure port."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection(components.HOST, port, timeout=5, context=ctx)
    try:
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        return resp.status == 200 and resp.read().strip() == b"ok"
    finally:
        conn.close()


def _etcd_healthy(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", "/health")
        resp = conn.getresponse()
        body = json.loads(resp.read() or b"{}")
        return resp.status == 200 and body.get("health") == "true"
    finally:
        conn.close()


def _node_ready(api: KubeClient, name: str) -> bool:
    """Ready=True and the not-ready taint removed (the scheduler respects it)."""
    node = api.get_or_none(f"/api/v1/nodes/{name}")
    if not node:
        return False
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in node.get("status", {}).get("conditions", [])
    )
    taints = {t.get("key") for t in node.get("spec", {}).get("taints") or []}
    return ready and not taints & {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}


class LocalCluster:
    """One control plane run, rooted at ``run_dir`` (certs, data, logs, kubeconfig, state).

    ``extra_args`` appends flags to a component's command line, by component name
    (``kube-apiserver``, ``kube-controller-manager``, ...): benchmarks tune what the defaults
    in ``components`` leave alone, such as the HPA sync period or client QPS.
    """

    def __init__(
        self,
        run_dir: Path,
        mode: str = MODE_FULL,
        binaries: Binaries | None = None,
        keep_run_dir: bool = False,
        tie_to_parent: bool = False,
        extra_args: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        if mode not in (MODE_FULL, MODE_APISERVER):
            raise ValueError(f"unknown mode {mode!r}")
        self.run_dir = run_dir.resolve()
        self.mode = mode
        self.binaries = binaries or discover()
        self.keep_run_dir = keep_run_dir
        self.tie_to_parent = tie_to_parent
        self.extra_args = {name: list(args) for name, args in (extra_args or {}).items()}
        self.components: list[process.Component] = []
        self.layout: components.Layout | None = None
        self.cluster: Cluster | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> Cluster:
        """Start every component and wait until it is ready; on failure stop what was started."""
        needed = FULL if self.mode == MODE_FULL else APISERVER_ONLY
        self.binaries.require(needed)
        stages = self.binaries.kwok_stages() if self.mode == MODE_FULL else None
        if self.mode == MODE_FULL and stages is None:
            raise ClusterUnavailable(
                "kwok stage file kwok-stages.yaml not found next to kwok (build.sh writes it); "
                "set ITL_KWOK_STAGES"
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                self._start(stages)
                break
            except ComponentFailed as exc:
                self.stop(remove=False)
                # Ports are probed free and then bound by the child: another run may win the race.
                if attempt == PORT_ATTEMPTS or "address already in use" not in str(exc):
                    raise
            except BaseException:
                self.stop(remove=False)
                raise
        assert self.cluster is not None
        self.cluster.startup_seconds = time.monotonic() - started
        state.write(self.run_dir, self.to_state())
        return self.cluster

    def _start(self, stages: Path | None) -> None:
        b = self.binaries
        shutil.rmtree(self.run_dir / "etcd", ignore_errors=True)  # a retry needs a fresh member
        the_pki = pki.create(self.run_dir / "pki")
        etcd_c, etcd_p, api_p, kcm_p, sched_p = ports.free_ports(5)
        lay = components.Layout(self.run_dir, the_pki, etcd_c, etcd_p, api_p, kcm_p, sched_p)
        self.layout = lay
        kubeconfig.write(
            lay.admin_kubeconfig,
            kubeconfig.build(
                name=CONTEXT_NAME,
                server=lay.server,
                ca_data=kubeconfig.ca_data_of(the_pki.ca_crt),
                user=kubeconfig.cert_user(the_pki.admin_crt, the_pki.admin_key),
            ),
        )
        timeout = start_timeout()

        etcd = self._spawn("etcd", components.etcd(b.get("etcd"), lay))
        self._wait(etcd, lambda: _etcd_healthy(lay.etcd_url), timeout, "etcd /health")

        full = self.mode == MODE_FULL
        apiserver = self._spawn(
            "kube-apiserver",
            components.kube_apiserver(b.get("kube-apiserver"), lay, with_controllers=full),
        )
        api = KubeClient.from_kubeconfig(lay.admin_kubeconfig)
        self._wait(apiserver, lambda: api.raw_text("/readyz") == "ok", timeout, "apiserver /readyz")

        if full:
            assert stages is not None
            kcm = self._spawn(
                "kube-controller-manager",
                components.kube_controller_manager(b.get("kube-controller-manager"), lay),
            )
            sched = self._spawn(
                "kube-scheduler", components.kube_scheduler(b.get("kube-scheduler"), lay)
            )
            self._wait(
                kcm, lambda: _healthz_ok(lay.kcm_port), timeout, "controller-manager /healthz"
            )
            self._wait(
                sched, lambda: _healthz_ok(lay.scheduler_port), timeout, "scheduler /healthz"
            )
            api.post("/api/v1/nodes", components.fake_node(NODE_NAME))
            kwok = self._spawn("kwok", components.kwok(b.get("kwok"), lay, stages))
            self._wait(
                kwok, lambda: _node_ready(api, NODE_NAME), timeout, f"node {NODE_NAME} Ready"
            )
            # KCM's serviceaccount controller must have run before Pods can be admitted.
            self._wait(
                kcm,
                lambda: api.get_or_none("/api/v1/namespaces/default/serviceaccounts/default"),
                timeout,
                "ServiceAccount default/default",
            )

        self.cluster = Cluster(
            kubeconfig=lay.admin_kubeconfig,
            server=lay.server,
            bin_dir=b.bin_dir,
            binaries=b,
            mode=self.mode,
            run_dir=self.run_dir,
            pids={c.name: c.pid for c in self.components},
        )

    def stop(self, remove: bool | None = None) -> None:
        """Stop components in reverse start order (kwok first, etcd last); maybe remove files."""
        for comp in reversed(self.components):
            process.stop(comp, marker=str(self.run_dir))
        self.components.clear()
        state.clear(self.run_dir)
        if remove is None:
            remove = not self.keep_run_dir
        if remove:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    # -- helpers ---------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> process.Component:
        assert self.layout is not None
        argv = [*argv, *self.extra_args.get(name, ())]
        comp = process.start(
            name, argv, self.layout.logs / f"{name}.log", tie_to_parent=self.tie_to_parent
        )
        self.components.append(comp)
        return comp

    def _wait(
        self, comp: process.Component, check: Callable[[], object], timeout: float, what: str
    ) -> None:
        """Poll *check* while making sure *comp* (and everything before it) is still running."""

        def probe() -> bool:
            for c in self.components:
                try:
                    c.check_alive()
                except ComponentFailed as exc:
                    raise StopWaiting(str(exc)) from exc
            return bool(check())

        try:
            wait_until(probe, timeout=timeout, what=what)
        except StopWaiting as exc:
            raise ComponentFailed(f"while waiting for {what}: {exc}") from None
        except WaitTimeout as exc:
            raise ComponentFailed(
                f"{exc}; {comp.name} log {comp.log}:\n{comp.log_tail()}"
            ) from None
        except ApiError as exc:  # pragma: no cover - surfaced by the probe only on odd statuses
            raise ComponentFailed(f"while waiting for {what}: {exc}") from None

    def to_state(self) -> dict[str, object]:
        """Serialisable description used by the CLI (`down`, `env`) and by fixture reuse."""
        assert self.cluster is not None
        return {
            "mode": self.mode,
            "run_dir": str(self.run_dir),
            "kubeconfig": str(self.cluster.kubeconfig),
            "server": self.cluster.server,
            "bin_dir": str(self.cluster.bin_dir) if self.cluster.bin_dir else None,
            "components": [
                {"name": c.name, "pid": c.pid, "log": str(c.log), "argv": c.argv}
                for c in self.components
            ],
            "started_at": time.time(),
        }
