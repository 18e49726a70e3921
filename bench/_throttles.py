"""The control plane's own throttles, read from its components' Prometheus metrics.

Why: when pods come slower than the CPU would allow, the wait is in a queue somewhere: a
client's rate limiter (kube-controller-manager, kube-scheduler), a controller's work queue
(fewer workers than work), or the apiserver's priority and fairness queues. Each of those
counts its waiting in a metric; the sums tell which one held the pods back. Standard library
only; the controllers' metrics are read anonymously (the local control plane allows
``/metrics`` without authorisation).
"""

from __future__ import annotations

import http.client
import re
import ssl
from collections.abc import Callable, Iterable

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def component_metrics(port: int) -> str:
    """``/metrics`` of a controller on 127.0.0.1:``port`` (self-signed, anonymous)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        body = response.read().decode()
        if response.status != 200:
            raise RuntimeError(f"/metrics on port {port}: HTTP {response.status}: {body[:200]}")
        return body
    finally:
        connection.close()


def total(text: str, name: str, *label_parts: str) -> float:
    """Sum of every sample of ``name`` whose labels contain each of ``label_parts``."""
    found = 0.0
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and match.group(1) == name:
            labels = match.group(2) or ""
            if all(part in labels for part in label_parts):
                found += float(match.group(3))
    return found


def _mean_ms(text: str, histogram: str, *label_parts: str) -> dict[str, float]:
    count = total(text, f"{histogram}_count", *label_parts)
    seconds = total(text, f"{histogram}_sum", *label_parts)
    return {
        "count": count,
        "total_s": round(seconds, 1),
        "mean_ms": round(1000 * seconds / count, 2) if count else 0.0,
    }


def go_gc_share(text: str) -> dict[str, float]:
    """CPU seconds the Go runtime spent in garbage collection and in the program itself
    (the runtime's own estimate), and the collector's share of the two."""
    gc = total(text, "go_cpu_classes_gc_total_cpu_seconds_total")
    user = total(text, "go_cpu_classes_user_cpu_seconds_total")
    return {
        "gc_cpu_s": round(gc, 1),
        "program_cpu_s": round(user, 1),
        "gc_pct": round(100 * gc / (gc + user), 1) if gc + user else 0.0,
    }


def controller_throttles(
    text: str, queues: Iterable[str], histograms: Iterable[str] = ()
) -> dict[str, object]:
    """A controller process's client rate-limiter wait, its work queues' wait and work, and
    the mean of any other ``histograms`` it keeps."""
    return {
        "go_gc": go_gc_share(text),
        **{histogram: _mean_ms(text, histogram) for histogram in histograms},
        "client_rate_limiter_wait": _mean_ms(text, "rest_client_rate_limiter_duration_seconds"),
        "client_request_latency": _mean_ms(text, "rest_client_request_duration_seconds"),
        "work_queues": {
            queue: {
                "waited": _mean_ms(text, "workqueue_queue_duration_seconds", f'name="{queue}"'),
                "worked": _mean_ms(text, "workqueue_work_duration_seconds", f'name="{queue}"'),
                "depth_now": total(text, "workqueue_depth", f'name="{queue}"'),
            }
            for queue in queues
        },
    }


def apiserver_throttles(text: str) -> dict[str, object]:
    """The apiserver's priority-and-fairness queueing and rejections (requests from the
    ``system:masters`` group, which every component of the local control plane uses, are
    exempt), and its request latency
    for the writes that make a pod (create, binding, status) and for Events."""
    return {
        "go_gc": go_gc_share(text),
        "apf_dispatched": total(text, "apiserver_flowcontrol_dispatched_requests_total"),
        "apf_dispatched_exempt": total(
            text, "apiserver_flowcontrol_dispatched_requests_total", 'priority_level="exempt"'
        ),
        "apf_queue_wait": _mean_ms(text, "apiserver_flowcontrol_request_wait_duration_seconds"),
        "apf_rejected": total(text, "apiserver_flowcontrol_rejected_requests_total"),
        "inflight_limit_rejected": total(text, "apiserver_dropped_requests_total"),
        "request_latency": {
            what: _mean_ms(text, "apiserver_request_duration_seconds", *parts)
            for what, parts in {
                "create pods": ('verb="POST"', 'resource="pods"', 'subresource=""'),
                "create pods/binding": ('verb="POST"', 'subresource="binding"'),
                "patch pods/status": ('verb="PATCH"', 'resource="pods"', 'subresource="status"'),
                "create events": ('verb="POST"', 'resource="events"'),
            }.items()
        },
        "etcd_request_latency": _mean_ms(text, "etcd_request_duration_seconds"),
    }


POD_WRITES = {
    "created": ('verb="POST"', 'resource="pods"', 'subresource=""', 'code="201"'),
    "bound": ('verb="POST"', 'subresource="binding"', 'code="201"'),
    "status_patched": ('verb="PATCH"', 'resource="pods"', 'subresource="status"', 'code="200"'),
}


def pod_writes(text: str) -> dict[str, float]:
    """How many pods the apiserver has created, bound (scheduler) and had their status patched
    (kwok starting them) so far: the control plane's own pod progress, before any controller
    folds it into a ReplicaSet's or Deployment's status."""
    return {
        what: total(text, "apiserver_request_total", *parts) for what, parts in POD_WRITES.items()
    }


def read_throttles(
    apiserver_metrics: Callable[[], str], kcm_port: int, scheduler_port: int
) -> dict[str, object]:
    """Every throttle, cumulative since the components started; a component that does not
    answer is reported as such rather than failing the benchmark at its end."""
    readers: dict[str, Callable[[], dict[str, object]]] = {
        "kube-apiserver": lambda: apiserver_throttles(apiserver_metrics()),
        "kube-controller-manager": lambda: controller_throttles(
            component_metrics(kcm_port), ("replicaset", "deployment", "disruption")
        ),
        "kube-scheduler": lambda: controller_throttles(
            component_metrics(scheduler_port),
            (),
            (
                "scheduler_scheduling_attempt_duration_seconds",
                "scheduler_pod_scheduling_sli_duration_seconds",
                "scheduler_scheduling_algorithm_duration_seconds",
            ),
        ),
    }
    report: dict[str, object] = {}
    for name, read in readers.items():
        try:
            report[name] = read()
        except (OSError, RuntimeError, http.client.HTTPException) as exc:
            report[name] = f"unreadable: {exc}"
    return report
