"""Polling cost: N autoscaled WorkerPools on one broker, polled every few seconds.

Targets: under 10 % of one core for 100 pools polled every 5 s; under 25 % of one core for
1000 pools polled every 2 s, on one AMQP connection. This script runs the real operator
(reconcile plus autoscaler) against the real control plane and RabbitMQ:

1. It creates ``--pools`` WorkerPools with autoscaling **off** and measures the operator's
   CPU (user + system, from ``/proc/<pid>/stat``) and RSS over ``--seconds``. This is the
   baseline: an operator watching 100 idle pools.
2. It turns autoscaling **on** for all of them (poll every ``--poll-interval`` s, default 5;
   min 0) and
   measures again. The difference is what polling costs: for each pool one passive
   declare per poll, the shared dead-letter read, the heartbeat view and the decision.

All pools use one broker URL, so the autoscaler holds one AMQP connection for all of them.
The script checks that, and counts the channels on it, through RabbitMQ's connection list
when ``rabbitmqctl`` is at hand.

Run: ``python bench/autoscaler_polling.py`` (``--pools 100 --seconds 60`` by default).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import yaml
from autoscaler_reaction import URL, autoscaling_environment

from itl_harness import jobs
from itl_harness.operator_process import OperatorProcess, sample_metric
from itl_harness.rabbitmq_node import Broker, own_broker
from localcluster import Cluster, wait_until

REPO = Path(__file__).resolve().parents[1]
RABBITMQ = str(REPO / "tools" / "rabbitmq" / "rabbitmq.sh")

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def polls(operator: OperatorProcess) -> float:
    """Polls done so far (the poll-duration histogram's count)."""
    return sample_metric(operator.metrics(), "workerpool_autoscaler_poll_duration_seconds_count")


def measure(operator: OperatorProcess, seconds: float) -> dict[str, float]:
    assert operator.process is not None
    pid = operator.process.pid
    polls0, cpu0, wall0 = polls(operator), cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    polls1, cpu1, wall1 = polls(operator), cpu_seconds(pid), time.monotonic()
    return {
        "cpu_percent_of_one_core": round(100 * (cpu1 - cpu0) / (wall1 - wall0), 2),
        "rss_mib": round(operator.rss_kib() / 1024, 1),
        "polls_per_second": round((polls1 - polls0) / (wall1 - wall0), 2),
    }


def apply(cluster: Cluster, namespace: str, text: str) -> None:
    """One server-side apply of every pool (one request per pool)."""
    cluster.kubectl("-n", namespace, "apply", "--server-side", "-f", "-", input=text, timeout=1800)


def settle(operator: OperatorProcess, reconciles: int) -> None:
    """Wait until the operator has counted ``reconciles`` reconciles, then let events drain."""
    wait_until(
        lambda: (
            sample_metric(
                operator.metrics(), "workerpool_operator_reconciles_total", 'result="success"'
            )
            >= reconciles
        ),
        timeout=1800,
        what=f"{reconciles} reconciles",
    )
    time.sleep(10)


def manifest(name: str, provider: str, enabled: bool, poll: int) -> dict[str, object]:
    return {
        "apiVersion": "controlplane.itlusions.com/v1alpha1",
        "kind": "WorkerPool",
        "metadata": {"name": name},
        "spec": {
            "rabbitmq": {"secretRef": {"name": "rabbitmq"}},
            "maxConcurrentJobs": 4,
            "replicaCount": 0,
            "providers": [provider],
            "autoscaling": {"enabled": enabled, "pollIntervalSeconds": poll},
        },
    }


def amqp_connections(name: str, broker: Broker | None) -> tuple[int, int] | None:
    """Open AMQP connections whose client-provided name contains ``name``, and the channels
    open on them (on ``broker``, else the shared broker)."""
    try:
        out = subprocess.run(
            ["bash", RABBITMQ, "ctl", "list_connections", "channels", "client_properties", "-q"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            env=broker.env if broker else None,
        ).stdout
    except Exception as exc:
        print(f"(cannot list connections: {exc})")
        return None
    channels = [int(line.split()[0]) for line in out.splitlines() if name in line]
    return len(channels), sum(channels)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--poll-interval", type=int, default=5, help="pollIntervalSeconds")
    parser.add_argument(
        "--own-broker",
        action="store_true",
        help="a RabbitMQ node of this run instead of the shared one (hundreds of pools)",
    )
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(own_broker()) if args.own_broker else None
        url = broker.amqp_url if broker else URL
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        cluster, namespace, operator, queues = stack.enter_context(
            autoscaling_environment("wpa-poll", Path(tmp), url)
        )
        pools = []
        for index in range(args.pools):
            name, provider = f"pool-{index:03d}", f"ITL.Poll{uuid.uuid4().hex[:8]}"
            queue = jobs.pool_queue(namespace, name)
            jobs.declare(url, queue, provider)
            queues.append(queue)
            pools.append((name, provider))
        text = "---\n".join(
            yaml.safe_dump(manifest(n, p, False, args.poll_interval)) for n, p in pools
        )
        apply(cluster, namespace, text)
        settle(operator, args.pools)
        baseline = measure(operator, args.seconds)
        print("autoscaling off:", baseline, flush=True)

        text = "---\n".join(
            yaml.safe_dump(manifest(n, p, True, args.poll_interval)) for n, p in pools
        )
        apply(cluster, namespace, text)
        settle(operator, 2 * args.pools)
        time.sleep(10)  # every poller started and polled a few times
        polling = measure(operator, args.seconds)
        print("autoscaling on: ", polling, flush=True)
        amqp = amqp_connections("itl-jobqueue workerpool-autoscaler", broker)

    report = {
        "pools": args.pools,
        "poll_interval_seconds": args.poll_interval,
        "window_seconds": args.seconds,
        "autoscaling_off": baseline,
        "autoscaling_on": polling,
        "polling_cost_cpu_percent": round(
            polling["cpu_percent_of_one_core"] - baseline["cpu_percent_of_one_core"], 2
        ),
        "autoscaler_amqp_connections": amqp[0] if amqp else None,
        "autoscaler_amqp_channels": amqp[1] if amqp else None,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
