"""Operations under authentication, on the real broker: ids bound to subscriptions, the caller
in the envelope, 404 (never 403) for another subscription's operation, and the audit trail."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import aio_pika
import pytest

from itl_controlplane_sdk.workers.envelope import job_owned_by
from tests.integration.api.conftest import API_VERSION, ApiFactory, WorkerFactory, resource_path
from tests.support.oidc import Issuer, running_issuer

pytestmark = pytest.mark.integration


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with running_issuer() as running:
        yield running


async def test_operations_of_another_subscription_are_not_found(
    api_process: ApiFactory,
    offloading_env: dict[str, str],
    issuer: Issuer,
    rabbitmq_url: str,
    queue_name: str,
    namespace: str,
) -> None:
    api = api_process("api-authz", {**offloading_env, **issuer.api_env()}).start(wait_for="/health")
    owner_token = issuer.token(subject="alice", subscriptions=["sub-1"])
    owner = {"Authorization": f"Bearer {owner_token}"}
    other = {"Authorization": f"Bearer {issuer.token(subject='mallory', subscriptions=['sub-2'])}"}
    everyone = {"Authorization": f"Bearer {issuer.token(subject='ops', subscriptions=['*'])}"}
    with api.client() as client:
        accepted = client.put(
            f"{resource_path(namespace, 'a')}?{API_VERSION}", json={"location": "we"}, headers=owner
        )
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["job_id"]
        assert job_owned_by(job_id, "sub-1")
        assert not job_owned_by(job_id, "sub-2")
        operation = f"/operations/{job_id}?{API_VERSION}"

        assert client.get(operation, headers=owner).json()["status"] == "pending"
        assert client.get(operation, headers=everyone).status_code == 200
        foreign = client.get(operation, headers=other)
        unknown = client.get(f"/operations/{uuid.uuid4()}?{API_VERSION}", headers=other)
        assert foreign.status_code == unknown.status_code == 404
        assert foreign.json()["error"]["code"] == unknown.json()["error"]["code"]
        cancel = client.post(f"/operations/{job_id}/cancel?{API_VERSION}", headers=other)
        assert cancel.status_code == 404
        assert client.get(operation, headers=owner).json()["status"] == "pending"

    # The envelope names the caller by subject and issuer, and carries no token.
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        deadline = time.monotonic() + 10
        message = None
        while message is None and time.monotonic() < deadline:
            message = await queue.get(fail=False, no_ack=True)
        assert message is not None
        envelope = json.loads(message.body)
        assert envelope["job_id"] == job_id
        assert envelope["caller"] == {"subject": "alice", "issuer": issuer.url}
        assert owner_token.split(".")[2] not in message.body.decode()

    deadline = time.monotonic() + 5
    audit: list[dict[str, object]] = []
    while len(audit) < 7 and time.monotonic() < deadline:  # lines follow their responses
        audit = [
            json.loads(line[line.index(" audit {") + 7 :])
            for line in api.log().splitlines()
            if " audit {" in line
        ]
    trail = [(r["method"], r["subject"], r["subscription"], r["status"]) for r in audit]
    assert ("PUT", "alice", "sub-1", 202) in trail
    assert ("GET", "alice", "sub-1", 200) in trail
    assert ("GET", "mallory", None, 404) in trail
    assert ("POST", "mallory", None, 404) in trail
    assert all(r["job_id"] == job_id for r in audit if r["subject"] == "alice")


def test_providers_see_who_asked(
    api_process: ApiFactory,
    worker_process: WorkerFactory,
    offloading_env: dict[str, str],
    issuer: Issuer,
    namespace: str,
) -> None:
    worker_process("w-whoami").start()
    api = api_process("api-whoami", {**offloading_env, **issuer.api_env()}).start(
        wait_for="/health"
    )
    token = issuer.token(subject="carol", subscriptions=["sub-1"])
    with api.client() as client:
        answer = client.put(
            f"{resource_path(namespace, 'me', 'WhoAmI')}?{API_VERSION}&wait=true",
            json={},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 201, answer.text
    assert answer.json()["properties"] == {"subject": "carol"}
