"""The cluster demo: install the operator, create a pool, and watch it scale with a burst.

``python -m itl_harness.demo_cluster`` (what ``make demo`` runs after the set-up) walks a newcomer
through the whole product in about a minute:

1. a broker: the local RabbitMQ (started with ``tools/rabbitmq/rabbitmq.sh up`` if needed);
2. a cluster, the first that applies: the current kubectl context if its name looks like a
   disposable cluster (``kind-*``, ``k3d-*``, ... the test harness's guard), else kind if a
   Docker engine answers, else the local control plane (``python -m localcluster up``);
3. ``helm install`` of the chart from this repository (namespace ``workerpool-demo-system``),
   serving the ``workerpool-demo`` namespace;
4. an autoscaled WorkerPool (0..3 replicas) and its broker Secret;
5. a burst of jobs through the SDK's ``JobQueue``, with ``kubectl get workerpools -w``-style
   progress until the queue drains and the pool scales back to zero;
6. where to see the metrics (the pool's series as the burst ended), the dashboard and
   alerts, and, when OpenTelemetry is configured (``OTEL_EXPORTER_OTLP_ENDPOINT``...), the
   trace of the burst; then how to look around and clean up (or ``--cleanup`` to do it now).

On the local control plane no container runs, so the operator runs here as a process with
the chart's ServiceAccount token, and a local worker process plays each pod (the same set-up
as the e2e suite, whose steps this reuses). On kind or another real cluster the operator and
the workers are pods: the images are built and loaded into kind; for another cluster they
must be pullable (``--image-tag``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from itl_controlplane_sdk import tracing
from itl_harness import stack
from itl_harness.rabbitmq_node import RABBITMQ_SCRIPT
from itl_harness.story import Snapshot, Story, pool_body
from localcluster import Cluster, WaitTimeout, discover, wait_until
from localcluster.existing import context_allowed, existing_cluster, recorded_cluster

REPO = Path(__file__).resolve().parents[2]

RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
OPERATOR_NS = "workerpool-demo-system"
POOL_NS = "workerpool-demo"
RELEASE = "workerpool-operator"
POOL = "demo-workers"
KIND_CLUSTER = "itl-demo"


def say(message: str) -> None:
    print(f"\n\033[1m==> {message}\033[0m", flush=True)


def run(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    done: subprocess.CompletedProcess[str] = subprocess.run(args, check=True, text=True, **kwargs)
    return done


# -- broker ------------------------------------------------------------------------------


def reachable(url: str) -> bool:
    """True when the broker's AMQP port accepts a TCP connection."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), 2):
            return True
    except OSError:
        return False


def ensure_rabbitmq() -> None:
    if reachable(RABBITMQ_URL):
        return
    say("starting the local RabbitMQ (tools/rabbitmq/rabbitmq.sh up)")
    run("bash", str(RABBITMQ_SCRIPT), "up")


# -- cluster -----------------------------------------------------------------------------


def current_context() -> str | None:
    kubectl = shutil.which("kubectl") or str(discover(("kubectl",)).paths.get("kubectl", ""))
    if not kubectl:
        return None
    done = subprocess.run(
        [kubectl, "config", "current-context"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or None if done.returncode == 0 else None


def kind_unusable() -> str | None:
    """Why kind cannot run the demo right now without a long build, or None when it can.

    Auto mode only takes kind when everything is already there: a Docker engine answering and
    the node image of ``tools/kind/build.sh`` built (``make kind-images``, many minutes cold);
    ``--cluster kind`` builds whatever is missing.
    """
    if not shutil.which("docker"):
        return "no docker CLI"
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        return "no Docker engine answers (docker info)"
    if not Path(kind_tool("--print-kind")).exists():
        return "kind is not built (make kind-images)"
    image = kind_tool("--print-node-image")
    inspected = subprocess.run(["docker", "image", "inspect", image], capture_output=True)
    if inspected.returncode != 0:
        return f"the node image {image} is not built (make kind-images)"
    return None


def kind_tool(flag: str) -> str:
    """What ``tools/kind/build.sh --print-...`` names (a path or an image), without building."""
    script = REPO / "tools" / "kind" / "build.sh"
    return run("bash", str(script), flag, capture_output=True).stdout.strip()


def choose(requested: str) -> tuple[str, str]:
    """The cluster to use and why."""
    if requested != "auto":
        return requested, "asked for"
    context = current_context()
    if context == f"kind-{KIND_CLUSTER}" and kind_unusable() is None:
        # The demo's own cluster from an earlier run: reused as kind, so the broker gets the
        # image built here again (as "current" it would be pulled from a registry and never come).
        return "kind", f"the demo's own kind cluster {KIND_CLUSTER!r} is the current context"
    if context and context_allowed(context):
        return "current", f"current context {context!r} looks disposable"
    if context:
        print(f"(current context {context!r} does not look disposable; not using it)")
    why_not = kind_unusable()
    if why_not is None:
        return "kind", "Docker and the kind node image are here"
    return "local", f"not kind: {why_not}"


def local_cluster() -> Cluster:
    cluster = recorded_cluster()
    if cluster is None:
        say("starting the local control plane (python -m localcluster up)")
        run(sys.executable, "-m", "localcluster", "up", stdout=subprocess.DEVNULL)
        cluster = recorded_cluster()
    if cluster is None:
        raise SystemExit("the local control plane did not come up (see python -m localcluster)")
    return cluster


def kind_cluster(tag: str) -> Cluster:
    """kind with the project's images (tools/kind/cluster.sh builds what is missing)."""
    say("building the worker and operator images (tools/images/build.sh)")
    run("bash", str(REPO / "tools" / "images" / "build.sh"), "project", tag)
    say(f"kind cluster {KIND_CLUSTER} (tools/kind/cluster.sh up)")
    run(
        "bash", str(REPO / "tools" / "kind" / "cluster.sh"), "up", KIND_CLUSTER,
        f"itl-controlplane-worker:{tag}", f"itl-controlplane-operator:{tag}",
    )  # fmt: skip
    run(kubectl_path(), "config", "use-context", f"kind-{KIND_CLUSTER}")
    return existing_cluster()


def kubectl_path() -> str:
    return shutil.which("kubectl") or str(discover(("kubectl",)).get("kubectl"))


def broker_manifests(image: str | None, into: Path) -> Path:
    """manifests/rabbitmq-dev, with its image replaced by ``image`` when one is given."""
    if image is None:
        return REPO / "manifests" / "rabbitmq-dev"
    shutil.copytree(REPO / "manifests" / "rabbitmq-dev", into / "base")
    name, _, image_tag = image.rpartition(":")
    (into / "kustomization.yaml").write_text(
        f"resources: [base]\nimages: [{{name: rabbitmq, newName: {name}, newTag: {image_tag}}}]\n"
    )
    return into


def free_port() -> int:
    """A free local port (RabbitMQ's CLI tools use 35672-35682: no fixed port near them)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def in_cluster_broker(
    cluster: Cluster, image: str | None, work_dir: Path
) -> tuple[str, str, subprocess.Popen[bytes]]:
    """manifests/rabbitmq-dev in the pool namespace, port-forwarded.

    Returns the URL the pods use, the URL this process uses (the port-forward) and the
    port-forward's process.
    """
    say(f"RabbitMQ for the pods: kubectl apply -k manifests/rabbitmq-dev -n {POOL_NS}")
    cluster.kubectl("apply", "-n", POOL_NS, "-k", str(broker_manifests(image, work_dir)))
    cluster.kubectl(
        "-n", POOL_NS, "rollout", "status", "deployment/rabbitmq", "--timeout=300s", timeout=330
    )
    port = free_port()
    forward = subprocess.Popen(
        [str(cluster.binaries.get("kubectl")), "--kubeconfig", str(cluster.kubeconfig),
         "-n", POOL_NS, "port-forward", "--address", "127.0.0.1", "service/rabbitmq",
         f"{port}:5672"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    pool_url = f"amqp://guest:guest@rabbitmq.{POOL_NS}.svc:5672/"
    return pool_url, f"amqp://guest:guest@127.0.0.1:{port}/", forward


def prepare(
    mode: str, cluster: Cluster, work_dir: Path
) -> tuple[str, str, subprocess.Popen[bytes] | None]:
    """The demo's namespaces and broker in ``cluster``.

    Returns the broker URL the pods use, the one this process uses, and the port-forward's
    process (None on the local control plane, whose workers use the local RabbitMQ).
    """
    ensure_namespace(cluster, OPERATOR_NS)
    ensure_namespace(cluster, POOL_NS)
    if mode == "local":
        return RABBITMQ_URL, RABBITMQ_URL, None
    broker_image = kind_tool("--print-rabbitmq-image") if mode == "kind" else None
    pool_url, publish_url, forward = in_cluster_broker(cluster, broker_image, work_dir)
    try:
        wait_until(lambda: reachable(publish_url), timeout=60, what="the port-forward")
    except WaitTimeout:
        forward.terminate()
        raise
    return pool_url, publish_url, forward


def ensure_namespace(cluster: Cluster, name: str) -> None:
    """Reuse the namespace of an earlier run; wait out one still being deleted (--cleanup)."""
    path = f"/api/v1/namespaces/{name}"
    found = cluster.api.get_or_none(path)
    if found is not None and found["metadata"].get("deletionTimestamp"):
        print(f"(waiting for namespace {name} from an earlier run to finish deleting)")
        stack.wait_gone(cluster, path, timeout=180, what=f"namespace {name} deleted")
        found = None
    if found is None:
        cluster.create_namespace(name, stack.RESTRICTED)


# -- the show ----------------------------------------------------------------------------


def header() -> None:
    print(f"{'TIME':>7}  {'NAME':<13} {'DESIRED':>7} {'READY':>5} {'QUEUE':>5} {'IN-FLIGHT':>9} "
          f"{'REPLICAS':>8}  STATUS")  # fmt: skip


def row(shot: Snapshot) -> None:
    def show(value: int | None) -> str:
        return "-" if value is None else str(value)

    print(
        f"{shot.at:6.1f}s  {POOL:<13} {show(shot.desired):>7} {show(shot.ready):>5} "
        f"{show(shot.queue):>5} {show(shot.in_flight):>9} {show(shot.replicas):>8}  "
        f"{shot.ready_condition}",
        flush=True,
    )


DEMO_SERIES = (
    "workerpool_desired_replicas",
    "workerpool_ready_replicas",
    "workerpool_queue_ready_messages",
    "workerpool_in_flight_jobs",
    "workerpool_scale_events_total",
    "workerpool_dead_letter_messages",
    "workerpool_broker_reachable",
)


def observability_text(mode: str, metrics: str | None, trace: tuple[str, str] | None) -> str:
    """Where the metrics, the dashboard, the alerts and (with OTEL set) the traces are."""
    lines = ["Metrics (docs/observability.md):"]
    if metrics is not None:
        lines.append("  the operator's /metrics as the burst ended (the pool's series):")
        lines += [
            f"    {line}"
            for line in metrics.splitlines()
            if line.startswith(DEMO_SERIES) and f'pool="{POOL}"' in line
        ]
    if mode != "local":
        lines += [
            f"  kubectl -n {OPERATOR_NS} port-forward svc/{RELEASE}-metrics 9090 &",
            "  curl -s 127.0.0.1:9090/metrics | grep ^workerpool_",
        ]
    lines += [
        "  workers: /metrics on each pod's port 8001 (worker_job_duration_seconds, ...)",
        f"  dashboard and alerts: helm upgrade {RELEASE} charts/workerpool-operator"
        f" -n {OPERATOR_NS} --reuse-values",
        "    --set grafanaDashboard.enabled=true --set alerts.enabled=true",
    ]
    if trace is not None:
        trace_id, job_id = trace
        lines += [
            f"Trace of the burst, in your tracing backend: {trace_id}",
            "  demo_burst > submit_job per job (e.g. job "
            f"{job_id}) > the workers' process_job > publish_result",
        ]
    else:
        lines.append("Traces: set OTEL_EXPORTER_OTLP_ENDPOINT (and install the otel extra) to")
        lines.append("  see each job as one trace from submit_job to the worker's process_job.")
    return "\n".join(lines)


def cleanup_text(mode: str, cluster: Cluster) -> str:
    lines = []
    if mode == "local":
        lines.append(f"export KUBECONFIG={cluster.kubeconfig}")
        if cluster.bin_dir:
            lines.append(f'export PATH={cluster.bin_dir}:"$PATH"   # kubectl and helm')
    lines += [
        f"kubectl get workerpools -n {POOL_NS}           # DESIRED/READY/QUEUE/IN-FLIGHT columns",
        f"kubectl describe workerpool {POOL} -n {POOL_NS}  # conditions, decisions, events",
        "",
        "Clean up:",
        f"  kubectl delete workerpool {POOL} -n {POOL_NS}",
        f"  helm uninstall {RELEASE} -n {OPERATOR_NS}",
        f"  kubectl delete namespace {POOL_NS} {OPERATOR_NS}",
    ]
    if mode == "local":
        lines.append("  make cluster-down      # the local control plane")
        lines.append("  make rabbitmq-down     # the local RabbitMQ")
    if mode == "kind":
        lines.append(f"  bash tools/kind/cluster.sh down {KIND_CLUSTER}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cluster", choices=["auto", "current", "kind", "local"], default="auto")
    parser.add_argument("--jobs", type=int, default=30, help="jobs in the burst")
    parser.add_argument("--seconds", type=float, default=2.0, help="work per job")
    parser.add_argument("--image-tag", default=None, help="image tag (kind: built as this)")
    parser.add_argument("--cleanup", action="store_true", help="uninstall everything at the end")
    args = parser.parse_args(argv)

    ensure_rabbitmq()
    traced = tracing.configure("itl-demo")
    mode, why = choose(args.cluster)
    tag = args.image_tag or ("demo" if mode == "kind" else None)
    work_dir = Path(tempfile.mkdtemp(prefix="itl-demo-cluster-"))
    if mode == "kind":
        # Up to the broker answering through its port-forward, any failure of kind is one
        # auto mode falls back from: an unusable kind must never fail `make demo`.
        try:
            cluster = kind_cluster(tag or "demo")
            pool_url, publish_url, forward = prepare(mode, cluster, work_dir)
        except Exception as exc:
            if args.cluster == "kind":
                raise SystemExit(f"kind failed: {exc}") from None
            mode, why, tag = "local", f"kind failed ({exc}); falling back", None
    if mode == "local":
        cluster = local_cluster()
    elif mode == "current":
        cluster = existing_cluster()
    if mode != "kind":
        pool_url, publish_url, forward = prepare(mode, cluster, work_dir)
    say(f"cluster: {mode}, {why} ({cluster.server})")

    story = Story(
        cluster=cluster,
        rabbitmq_url=publish_url,
        pool_rabbitmq_url=pool_url,
        work_dir=work_dir,
        local=mode == "local",
        image_tag=tag,
        pool_name=POOL,
        release_name=RELEASE,
        operator_namespace=OPERATOR_NS,
        pool_namespace=POOL_NS,
    )
    try:
        say(f"helm install {RELEASE} charts/workerpool-operator -n {OPERATOR_NS}")
        story.install()
        story.start_operator()
        if story.operator is not None:
            print(f"operator: local process with the chart's ServiceAccount token "
                  f"(log {story.operator.log_path})")  # fmt: skip
        stale = story.purge_queue()
        if stale:
            print(f"(purged {stale} jobs an earlier run left in {story.queue_name})")
        say(f"kubectl apply: Secret rabbitmq and WorkerPool {POOL} (autoscaling 0..3)")
        story.create_pool(pool_body(POOL, max_replicas=3, cooldown=10))
        story.start_workers()
        wait_until(
            lambda: story.deployment_replicas() is not None,
            timeout=90,
            what="the pool's Deployment",
        )
        say(f"submitting {args.jobs} jobs of {args.seconds}s (JobQueue.submit_job)")
        header()
        story.sample(interval=0.5, on_change=row)
        with tracing.span("demo_burst", {"itl.demo.jobs": args.jobs}):
            job_ids = story.submit(args.jobs, args.seconds)
            trace_id = tracing.current_trace_id()
        trace = (trace_id, job_ids[0]) if traced and trace_id and job_ids else None
        results = story.results(job_ids, timeout=300)
        done = sum(1 for r in results.values() if r is not None)
        wait_until(lambda: story.deployment_replicas() == 0, timeout=180, what="scale-down to 0")
        time.sleep(1)
        metrics = story.operator.metrics() if story.operator is not None else None
        story.stop_processes()
        # A durable queue bound to ITL.Demo keeps collecting copies of every later ITL.Demo
        # job on this broker (docs/queue-topology.md): remove it with its workers.
        story.delete_queue()
        say(
            f"{done}/{len(job_ids)} jobs completed; the pool went up to "
            f"{story.max_replicas_seen()} replicas and back to 0"
        )
    except (WaitTimeout, subprocess.CalledProcessError, AssertionError) as exc:
        print(f"\ndemo failed: {exc}\n{story.log_tails()}", file=sys.stderr)
        story.stop_processes()
        return 1
    finally:
        if forward is not None:
            forward.terminate()
    if args.cleanup:
        say("cleaning up")
        story.close()
        print("done (the cluster and RabbitMQ keep running)")
    else:
        print(f"\nLook around (logs in {work_dir}):\n{cleanup_text(mode, cluster)}")
    print(f"\n{observability_text(mode, metrics, trace)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
