"""The least-privilege regexes name exactly the objects each role uses."""

from __future__ import annotations

import re

import pytest

from itl_controlplane_sdk.contract.permissions import autoscaler, for_role, submitter, worker


def allows(pattern: str, name: str) -> bool:
    return re.search(pattern, name) is not None  # RabbitMQ matches like re.search


def test_a_worker_reads_only_its_own_queue_and_retries() -> None:
    perms = worker("provider.jobs.team-a.vm")
    assert allows(perms.read, "provider.jobs.team-a.vm")
    assert allows(perms.read, "provider.jobs.team-a.vm.retry.2000ms")
    for other in ("provider.jobs", "provider.jobs.team-b.vm", "provider.jobs.team-a.vmx"):
        assert not allows(perms.read, other)
        assert not allows(perms.configure, other)
    assert not allows(perms.read, "provider.jobs.dlq")


def test_a_submitter_reads_only_results_and_configures_nothing() -> None:
    perms = submitter()
    assert allows(perms.write, "provider.exchange")
    assert allows(perms.read, "provider.results")
    for queue in ("provider.jobs", "provider.jobs.dlq", "provider.cancellations"):
        assert not allows(perms.read, queue)
        assert not allows(perms.configure, queue)


def test_the_autoscaler_reads_heartbeats_and_binds_only_its_arrival_queues() -> None:
    perms = autoscaler()
    assert allows(perms.read, "provider.heartbeats.watch.0123abcd")
    for arrivals in ("provider.arrivals.watch.0123abcd",):
        assert allows(perms.configure, arrivals)
        assert allows(perms.write, arrivals)  # bind it
        assert allows(perms.read, arrivals)  # consume it
    for exchange in ("provider.exchange", "provider.unrouted", "provider.exchange.high"):
        assert allows(perms.read, exchange)  # bind from it
        assert not allows(perms.write, exchange)  # never publish a job
    for queue in ("provider.jobs", "provider.jobs.team-a.vm", "provider.jobs.dlq", "snoop"):
        assert not allows(perms.read, queue)
        assert not allows(perms.write, queue)
        assert not allows(perms.configure, queue)
    assert not allows(perms.configure, "provider.arrivals.watch.x; provider.jobs")


def test_a_worker_role_needs_its_queue() -> None:
    with pytest.raises(ValueError, match="queue"):
        for_role("worker")
    with pytest.raises(ValueError, match="unknown role"):
        for_role("root")
