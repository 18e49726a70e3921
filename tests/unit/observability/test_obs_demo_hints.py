"""The end of `make demo` says where the metrics are and, with tracing on, the burst's trace."""

from __future__ import annotations

from itl_harness import demo_cluster

METRICS = "\n".join(
    [
        'workerpool_desired_replicas{namespace="workerpool-demo",pool="demo-workers"} 0.0',
        'workerpool_desired_replicas{namespace="other",pool="someone-else"} 4.0',
        "workerpool_operator_pools 1.0",
    ]
)


def test_local_run_shows_the_pools_series_and_the_trace() -> None:
    text = demo_cluster.observability_text("local", METRICS, ("ab" * 16, "job-1"))
    assert 'workerpool_desired_replicas{namespace="workerpool-demo",pool="demo-workers"}' in text
    assert "someone-else" not in text and "workerpool_operator_pools" not in text
    assert f"Trace of the burst, in your tracing backend: {'ab' * 16}" in text
    assert "(e.g. job job-1) > the workers' process_job" in text
    assert "port-forward" not in text  # the local operator was a process, now stopped


def test_cluster_run_without_tracing_says_how_to_get_both() -> None:
    text = demo_cluster.observability_text("kind", None, None)
    assert "port-forward svc/workerpool-operator-metrics 9090" in text
    assert "grafanaDashboard.enabled=true" in text and "alerts.enabled=true" in text
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in text
