"""TLS to RabbitMQ on a node of the test's own (never the shared broker): verified by our CA,
refused when the broker's certificate comes from another CA or no client certificate is shown,
and used by the SDK, a worker process, an API process and the operator's autoscaler."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from itl_controlplane_sdk import ResourceRequest
from itl_controlplane_sdk.contract.tls import BrokerTls
from itl_controlplane_sdk.errors import BrokerUnavailableError
from itl_controlplane_sdk.workers import JobQueue
from itl_harness.workers import WorkerProcess
from tests.integration.api.apiprocess import ApiProcess
from tests.support.own_broker import running
from tests.support.tls_broker import TlsBroker
from workerpool_operator.autoscaler.broker import BrokerHub
from workerpool_operator.autoscaler.observe import QueueReading

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    node = TlsBroker(tmp_path_factory.mktemp("tls-broker"))
    with running(node.node):
        yield node


def client_tls(broker: TlsBroker, *, ca: Path | None = None, cert: bool = True) -> BrokerTls:
    files = broker.tls
    return BrokerTls(
        ca_file=str(ca or files.ca),
        cert_file=str(files.client_cert) if cert else None,
        key_file=str(files.client_key) if cert else None,
    )


def tls_env(broker: TlsBroker) -> dict[str, str]:
    return {
        "RABBITMQ_URL": broker.url,
        "RABBITMQ_TLS_CA_FILE": str(broker.tls.ca),
        "RABBITMQ_TLS_CERT_FILE": str(broker.tls.client_cert),
        "RABBITMQ_TLS_KEY_FILE": str(broker.tls.client_key),
    }


def group_request(name: str) -> ResourceRequest:
    return ResourceRequest(
        subscription_id="sub-tls",
        resource_group=name,
        provider_namespace="ITL.Core",
        resource_type="ResourceGroup",
        resource_name=name,
        location="westeurope",
    )


async def test_a_broker_certificate_from_another_ca_is_refused(broker: TlsBroker) -> None:
    queue = JobQueue(broker.url, tls=client_tls(broker, ca=broker.tls.other_ca))
    with pytest.raises(BrokerUnavailableError, match="CERTIFICATE_VERIFY_FAILED"):
        await queue.connect()


async def test_verification_is_on_without_settings_too(broker: TlsBroker) -> None:
    # No CA given: the system CAs apply, and they did not sign the test broker's certificate.
    with pytest.raises(BrokerUnavailableError, match="CERTIFICATE_VERIFY_FAILED"):
        await JobQueue(broker.url).connect()


async def test_the_broker_refuses_a_client_without_certificate(broker: TlsBroker) -> None:
    with pytest.raises(BrokerUnavailableError):
        await JobQueue(broker.url, tls=client_tls(broker, cert=False)).connect()


async def test_the_sdk_submits_over_verified_tls(broker: TlsBroker) -> None:
    queue = JobQueue(broker.url, tls=client_tls(broker))
    await queue.connect()
    try:
        await queue.submit_job("ITL.Core", "ResourceGroup", "create", group_request("rg-sdk"))
        stats = await queue.get_queue_stats(["provider.jobs"])
        assert stats["queues"]["provider.jobs"]["message_count"] >= 1, stats
    finally:
        await queue.disconnect()


async def test_worker_api_and_autoscaler_use_the_tls_settings(
    broker: TlsBroker, tmp_path: Path
) -> None:
    env = tls_env(broker)
    worker = WorkerProcess("worker-tls", broker.url, tmp_path, env=env).start()
    api = ApiProcess(
        "api-tls", tmp_path, env={**env, "OFFLOADING_ENABLED": "true", "AUTH_MODE": "none"}
    ).start(wait_for="/health")
    hub = BrokerHub(tls=client_tls(broker))
    try:
        with api.client() as client:
            created = client.put(
                "/subscriptions/sub-tls/resourceGroups/rg-api?api-version=2023-01-01&wait=true",
                json={"location": "westeurope"},
            )
        assert created.status_code == 201, created.text
        assert created.json()["name"] == "rg-api"

        read = await hub.read(broker.url, queue="provider.jobs", pool="default/tls")
        assert isinstance(read.reading, QueueReading), read.reading
        assert read.reading.consumers >= 1
    finally:
        await hub.close()
        api.stop()
        worker.stop(timeout=10)
