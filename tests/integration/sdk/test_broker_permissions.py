"""Least-privilege broker users on the real broker, in a vhost of the test's own.

Users are made by ``tools/rabbitmq/broker_users.py`` (the tool operators run); each role then
does its job with the SDK's own components and is refused outside it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import aio_pika
import pytest
from aiormq.exceptions import ChannelAccessRefused

from itl_controlplane_sdk import ResourceRequest
from itl_controlplane_sdk.errors import BrokerUnavailableError, RetryableJobError
from itl_controlplane_sdk.workers import JobQueue, JobResult, JobStatus
from itl_controlplane_sdk.workers.heartbeats import Heartbeat
from tests.support.services import REPO, rabbitmqctl

pytestmark = pytest.mark.integration

TOOL = REPO / "tools" / "rabbitmq" / "broker_users.py"
QUEUE_A = "provider.jobs.team-a.compute"
QUEUE_B = "provider.jobs.team-b.storage"


@dataclass
class Broker:
    vhost: str
    url_of: Callable[..., str]


@pytest.fixture
def broker(rabbitmq_url: str) -> Iterator[Broker]:
    vhost = f"itl-perm-{uuid.uuid4().hex[:8]}"
    suffix = vhost.rsplit("-", 1)[1]
    rabbitmqctl("add_vhost", vhost)
    users: list[str] = []
    parts = urlsplit(rabbitmq_url)

    def make_user(role: str, queue: str | None = None) -> str:
        user = f"{role}-{suffix}-{len(users)}"
        password = uuid.uuid4().hex
        args = [role, user, "--vhost", vhost]
        if queue:
            args += ["--queue", queue]
        done = subprocess.run(
            [
                sys.executable,
                str(TOOL),
                *args,
                "--rabbitmqctl",
                f"bash {REPO}/tools/rabbitmq/rabbitmq.sh ctl",
            ],
            input=password + "\n",
            capture_output=True,
            text=True,
            timeout=120,
            env={k: v for k, v in os.environ.items() if k != "ITL_BROKER_PASSWORD"},
        )
        assert done.returncode == 0, done.stderr
        assert password not in done.stdout + done.stderr
        users.append(user)
        host = f"{parts.hostname}:{parts.port or 5672}"
        return f"amqp://{user}:{password}@{host}/{quote(vhost, safe='')}"

    yield Broker(vhost, make_user)
    rabbitmqctl("delete_vhost", vhost)
    for user in users:
        rabbitmqctl("delete_user", user)


async def refused(url: str, action: Callable[[aio_pika.abc.AbstractChannel], Any]) -> None:
    """Asserts that ``action`` on a fresh channel is refused with ACCESS_REFUSED."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        with pytest.raises(ChannelAccessRefused):
            await action(channel)


def request(namespace: str, name: str) -> ResourceRequest:
    return ResourceRequest(
        subscription_id="sub-1",
        resource_group="rg",
        provider_namespace=namespace,
        resource_type="Thing",
        resource_name=name,
    )


@pytest.fixture
async def queues() -> AsyncIterator[list[JobQueue]]:
    opened: list[JobQueue] = []
    yield opened
    for queue in opened:
        await queue.disconnect()


async def test_each_role_does_its_job_and_nothing_else(
    broker: Broker, queues: list[JobQueue]
) -> None:
    make = broker.url_of
    worker_a_url = make("worker", QUEUE_A)
    worker_b_url = make("worker", QUEUE_B)
    submitter_url = make("submitter")
    autoscaler_url = make("autoscaler")
    admin_url = make("admin")

    # Workers declare the topology and their pool queue, and consume it (with a retry and a
    # dead letter, which need their retry queue and the DLX).
    worker_a = JobQueue(worker_a_url, queue_name=QUEUE_A, bindings=["provider.ITL.A.#"])
    worker_b = JobQueue(worker_b_url, queue_name=QUEUE_B, bindings=["provider.ITL.B.#"])
    queues += [worker_a, worker_b]
    attempts: dict[str, int] = {}

    async def handle(job_id: str, payload: dict[str, Any]) -> JobResult:
        attempts[job_id] = attempts.get(job_id, 0) + 1
        name = payload["request"]["resource_name"]
        if name == "retry" and attempts[job_id] == 1:
            raise RetryableJobError("try again")
        if name == "fail":
            return JobResult(job_id, JobStatus.FAILED, error="permanent")
        return JobResult(job_id, JobStatus.COMPLETED, result={"name": name})

    for worker in (worker_a, worker_b):
        await worker.connect()
        await worker.consume_jobs(handle, retry_base_delay=0.2)
        await worker.publish_heartbeat(
            Heartbeat(worker_id=f"w-{worker.queue_name}", pool="p", in_flight=0, capacity=1)
        )

    # The submitter publishes, reads results and cancels (declaring nothing).
    submitter = JobQueue(submitter_url, declare_topology=False)
    queues.append(submitter)
    await submitter.connect()
    done = await submitter.submit_job("ITL.A", "Thing", "create", request("ITL.A", "ok"))
    retried = await submitter.submit_job("ITL.A", "Thing", "create", request("ITL.A", "retry"))
    failed = await submitter.submit_job("ITL.B", "Thing", "create", request("ITL.B", "fail"))
    for job_id, status in ((done, "completed"), (retried, "completed"), (failed, "failed")):
        result = await submitter.get_result(job_id, timeout=20)
        assert result is not None and result.status.value == status, (job_id, result)
    assert attempts[retried] == 2
    await submitter.cancel_job(done, "too late, but allowed to say so")

    # The autoscaler reads depths and heartbeats, and can do nothing else.
    autoscaler = JobQueue(autoscaler_url, declare_topology=False)
    queues.append(autoscaler)
    await autoscaler.connect()
    stats = await autoscaler.get_queue_stats([QUEUE_A, QUEUE_B, "provider.jobs.dlq"])
    assert stats["connected"], stats
    assert stats["queues"][QUEUE_A]["consumer_count"] == 1
    assert stats["queues"]["provider.jobs.dlq"]["message_count"] >= 1
    assert isinstance(await autoscaler.get_worker_heartbeats(), list)
    with pytest.raises(BrokerUnavailableError, match="ACCESS_REFUSED"):
        await autoscaler.submit_job("ITL.A", "Thing", "create", request("ITL.A", "no"))
    # It keeps an arrival queue bound like pool A's queue: a job for A wakes it, and still
    # reaches pool A's worker.
    arrived = asyncio.Event()
    arrivals = autoscaler.arrival_watch()
    await arrivals.watch("team-a/compute", bindings=["provider.ITL.A.#"], on_arrival=arrived.set)
    woke = await submitter.submit_job("ITL.A", "Thing", "create", request("ITL.A", "wake"))
    await asyncio.wait_for(arrived.wait(), timeout=10)
    result = await submitter.get_result(woke, timeout=20)
    assert result is not None and result.status.value == "completed", result
    await arrivals.unwatch("team-a/compute")
    assert not arrivals.watching("team-a/compute")

    # The admin lists dead letters (the failed job is one).
    admin = JobQueue(admin_url, declare_topology=False)
    queues.append(admin)
    await admin.connect()
    letters = await admin.get_dlq_messages(10)
    assert failed in {letter["job_id"] for letter in letters}

    # Refusals: another pool's queue, the catch-all queue, purges, the DLQ.
    await refused(worker_a_url, lambda ch: _consume(ch, QUEUE_B))
    await refused(worker_a_url, lambda ch: _consume(ch, "provider.jobs"))
    await refused(worker_a_url, lambda ch: _purge(ch, QUEUE_B))
    await refused(worker_b_url, lambda ch: _consume(ch, QUEUE_A))
    await refused(submitter_url, lambda ch: _purge(ch, "provider.jobs"))
    await refused(submitter_url, lambda ch: _purge(ch, QUEUE_A))
    await refused(submitter_url, lambda ch: _consume(ch, QUEUE_A))
    await refused(submitter_url, lambda ch: _consume(ch, "provider.jobs.dlq"))
    await refused(submitter_url, lambda ch: _delete(ch, QUEUE_A))
    await refused(autoscaler_url, lambda ch: _consume(ch, QUEUE_A))
    await refused(autoscaler_url, lambda ch: _purge(ch, "provider.jobs.dlq"))
    # It binds only its own arrival queues: a queue of another name is refused.
    await refused(autoscaler_url, lambda ch: ch.declare_queue("snoop", exclusive=True))
    # And the admin may purge.
    connection = await aio_pika.connect(admin_url)
    async with connection:
        channel = await connection.channel()
        await _purge(channel, "provider.jobs.dlq")


async def _ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
    """A consumer callback; the consume it is given to is expected to be refused."""


async def _consume(channel: aio_pika.abc.AbstractChannel, name: str) -> None:
    queue = await channel.get_queue(name, ensure=False)
    await queue.consume(_ignore)


async def _purge(channel: aio_pika.abc.AbstractChannel, name: str) -> None:
    queue = await channel.get_queue(name, ensure=False)
    await queue.purge()


async def _delete(channel: aio_pika.abc.AbstractChannel, name: str) -> None:
    await channel.queue_delete(name)
