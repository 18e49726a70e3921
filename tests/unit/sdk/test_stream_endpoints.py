"""Where results go over the stream protocol: each node's stream port, and failing over between
them (``workers.stream_results``); the settings that choose the protocol."""

from __future__ import annotations

import socket
import ssl
from types import SimpleNamespace

import pytest
from rstream import Consumer, Producer
from yarl import URL

from itl_controlplane_sdk.api.settings import ApiSettings
from itl_controlplane_sdk.contract.settings import WorkerSettings
from itl_controlplane_sdk.workers import JobQueue
from itl_controlplane_sdk.workers.stream_results import StreamEndpoint, StreamEndpoints


def test_a_nodes_stream_port_defaults_to_rabbitmqs_pairing_with_its_amqp_port() -> None:
    assert StreamEndpoint.from_amqp_url("amqp://u:p@rabbit/").port == 5552
    assert StreamEndpoint.from_amqp_url("amqp://u:p@rabbit:5672/").port == 5552
    assert StreamEndpoint.from_amqp_url("amqps://u:p@rabbit/").port == 5551
    # The local cluster's nodes share a host: each gets the port of its own AMQP port.
    ports = [StreamEndpoint.from_amqp_url(f"amqp://127.0.0.1:{p}/").port for p in (5701, 5702)]
    assert ports == [5581, 5582]
    assert StreamEndpoint.from_amqp_url("amqp://127.0.0.1:5702/", 6000).port == 6000


def test_an_endpoint_keeps_the_urls_user_vhost_and_never_shows_the_password() -> None:
    endpoint = StreamEndpoint.from_amqp_url("amqp://alice:s3cret@node-1:5672/team%2Fa")
    assert (endpoint.host, endpoint.username, endpoint.vhost) == ("node-1", "alice", "team/a")
    assert "s3cret" not in repr(endpoint) and "s3cret" not in str(endpoint)


def test_failover_moves_round_robin_and_points_rstreams_next_connection_there() -> None:
    endpoints = StreamEndpoints(
        [StreamEndpoint.from_amqp_url(f"amqp://g:g@127.0.0.1:{p}/") for p in (5701, 5702, 5703)]
    )
    producer = Producer(**endpoints.current.client_options("test"))
    consumer = Consumer(**endpoints.current.client_options("test"))
    assert [endpoints.advance().port for _ in range(3)] == [5582, 5583, 5581]
    endpoints.advance()
    for entity in (producer, consumer):
        endpoints.point(entity)
        # The attribute rstream 1.x opens new connections to; if it moves, this fails.
        assert (entity._pool.addr.host, entity._pool.addr.port) == ("127.0.0.1", 5582)


async def test_start_tries_every_node_and_names_each_one_when_none_answers() -> None:
    closed = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            closed.append(probe.getsockname()[1])
    endpoints = StreamEndpoints(
        [StreamEndpoint("127.0.0.1", port, "/", "guest", "guest") for port in closed]
    )
    producer = Producer(**endpoints.current.client_options("test"))
    with pytest.raises(ConnectionError) as raised:
        await endpoints.start(producer)
    assert all(f"127.0.0.1:{port}" in str(raised.value) for port in closed)


def test_auto_is_the_default_results_protocol_of_workers_apis_and_queues() -> None:
    assert WorkerSettings().results_protocol == "auto"
    assert WorkerSettings().results_stream_port is None
    assert ApiSettings(AUTH_MODE="none").results_protocol == "auto"
    assert JobQueue().results_protocol == "auto"
    with pytest.raises(ValueError, match="results_protocol must be one of auto, amqp, stream"):
        JobQueue(results_protocol="kafka")  # type: ignore[arg-type]


def test_tls_nodes_share_one_context_built_once_whichever_node_is_in_use() -> None:
    """After a failover the endpoints start at the node in use; every ``amqps://`` node
    gets the queue's one verifying context (building one reads the CA files), a plain
    ``amqp://`` node none."""
    urls = ["amqps://g:g@node-1:5671/", "amqp://g:g@node-2:5672/", "amqps://g:g@node-3:5671/"]
    queue = JobQueue(",".join(urls))
    contexts = []
    for in_use, order in ((0, ["node-1", "node-2", "node-3"]), (2, ["node-3", "node-1", "node-2"])):
        # Stands in for the connection: the endpoints read only which node it uses.
        connection = SimpleNamespace(url=URL(urls[in_use]))
        endpoints = queue._stream_endpoints(connection)  # type: ignore[arg-type]
        nodes = [endpoints.current, *(endpoints.advance() for _ in range(len(endpoints) - 1))]
        assert [e.host for e in nodes] == order
        by_host = {e.host: e.ssl_context for e in nodes}
        assert by_host["node-2"] is None
        contexts += [by_host["node-1"], by_host["node-3"]]
    assert all(context is contexts[0] for context in contexts)
    assert isinstance(contexts[0], ssl.SSLContext)
    assert contexts[0].verify_mode is ssl.CERT_REQUIRED and contexts[0].check_hostname
