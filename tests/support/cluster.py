"""The local 3-node RabbitMQ cluster (``tools/rabbitmq/cluster.sh``) as tests see it."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess

import aio_pika

from itl_controlplane_sdk.contract import replication
from itl_controlplane_sdk.contract.topology import retry_queue_name
from tests.support.services import REPO, unavailable

CLUSTER_SCRIPT = REPO / "tools" / "rabbitmq" / "cluster.sh"
NODES = (1, 2, 3)
TEST_QUEUE_PREFIX = "test.cluster."
RETRY_DELAYS_MS = (100, 200, 400)
"""The retry delays the cluster tests' workers use (their queues are deleted with the pool's)."""


def _script(*args: str, timeout: float = 600) -> str:
    try:
        done = subprocess.run(
            ["bash", str(CLUSTER_SCRIPT), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"cluster.sh {' '.join(args)} took more than {timeout} s") from exc
    if done.returncode != 0:
        raise RuntimeError(f"cluster.sh {' '.join(args)} failed: {done.stdout}{done.stderr}")
    return done.stdout


@dataclasses.dataclass(frozen=True)
class RabbitMQCluster:
    """Three clustered nodes on 127.0.0.1; node N (1-3) can be killed and started again.

    ``down`` holds the nodes a test killed or stopped and has not started again, so the
    fixture can bring them back as soon as the test ends (``restore``).
    """

    base_port: int
    down: set[int] = dataclasses.field(default_factory=set)

    def port(self, node: int) -> int:
        return self.base_port + node - 1

    def url(self, node: int) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port(node)}/"

    @property
    def urls(self) -> str:
        """All three nodes as one comma-separated RABBITMQ_URL, node 1 first."""
        return ",".join(self.url(node) for node in NODES)

    def urls_from(self, first: int) -> str:
        """All three nodes, ``first`` first: a client connects to ``first`` while it is up."""
        order = [first, *(node for node in NODES if node != first)]
        return ",".join(self.url(node) for node in order)

    def kill(self, node: int) -> None:
        """SIGKILL: the node dies without closing anything cleanly."""
        self.down.add(node)
        _script("kill", str(node))

    def stop(self, node: int) -> None:
        self.down.add(node)
        _script("stop", str(node))

    def start(self, node: int) -> None:
        """Starts the node and returns once it is back in the cluster."""
        _script("start", str(node))
        self.down.discard(node)

    def listening(self, node: int) -> bool:
        """The node's AMQP port accepts connections (it opens once the node has booted)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port(node)), 2):
                return True
        except OSError:
            return False

    def running(self) -> bool:
        """All three nodes answer and see each other, checked cheaply: every rabbitmqctl call
        starts an Erlang VM, seconds each on a loaded machine, so one call, not one per node."""
        if not all(self.listening(node) for node in NODES):
            return False
        try:
            self.ctl(1, "-q", "await_online_nodes", "3", "--timeout", "10")
        except RuntimeError:
            return False
        return True

    def ensure_all_up(self) -> None:
        _script("up")
        self.down.clear()

    def restore(self) -> None:
        """Brings back every node a test took down, so the next test starts with three."""
        if self.down or not self.running():
            self.ensure_all_up()

    def ctl(self, node: int, *args: str) -> str:
        return _script("ctl", str(node), *args, timeout=120)

    def queue_leader(self, queue: str, *, via: int = 1) -> int:
        """The node (1-3) leading a quorum queue or stream."""
        rows = json.loads(
            self.ctl(via, "-q", "list_queues", "name", "leader", "--formatter", "json")
        )
        for row in rows:
            if row["name"] == queue:
                return int(str(row["leader"]).split("@")[0].rsplit("-", 1)[1])
        raise LookupError(f"queue {queue!r} not found")

    def connections_on(self, node: int) -> list[str]:
        """``connection_name`` of every client connection to ``node``."""
        rows = json.loads(
            self.ctl(
                node, "-q", "list_connections", "port", "client_properties", "--formatter", "json"
            )
        )
        names = []
        for row in rows:
            if int(row["port"]) != self.port(node):
                continue
            properties = {key: value for key, _, value in row["client_properties"]}
            names.append(str(properties.get("connection_name", "")))
        return names


def require_cluster() -> RabbitMQCluster:
    """The running cluster with all three nodes up, or skip (fail under CI=true).

    A cluster with a node down (a test that failed before its teardown, a node that crashed)
    is brought back whole; a cluster with no node up is unavailable: ``make test`` starts it.
    """
    cluster = RabbitMQCluster(int(os.environ.get("ITL_CLUSTER_BASE_PORT", "5701")))
    if not any(cluster.listening(node) for node in NODES):
        unavailable(
            "RabbitMQ cluster",
            f"no node listens on 127.0.0.1:{cluster.port(1)}-{cluster.port(3)} "
            "(start it with `make rabbitmq-cluster-up`)",
        )
    try:
        cluster.restore()
    except RuntimeError as exc:
        unavailable("RabbitMQ cluster", str(exc))
    return cluster


async def connect_any(cluster: RabbitMQCluster) -> aio_pika.abc.AbstractConnection:
    """A plain connection to the first node that answers (a test may have killed one)."""
    for node in NODES:
        try:
            return await aio_pika.connect(cluster.url(node), timeout=10)
        except (OSError, aio_pika.exceptions.AMQPError, TimeoutError):
            continue
    raise AssertionError("no cluster node answers")


async def delete_pool_queues(cluster: RabbitMQCluster, *pools: str) -> None:
    """Deletes test pools' queues: every priority band and each band's retry queues.

    Brings the nodes back first: deleting a quorum queue with a member down waits for it in
    vain. A pool queue left behind binds ``provider.#`` and collects a copy of every job later
    tests submit, so leftovers slow every later publish.
    """
    cluster.restore()
    connection = await connect_any(cluster)
    async with connection:
        for pool in pools:
            for band in replication.band_queues(pool, "replicated"):
                for queue in (band, *(retry_queue_name(band, ms) for ms in RETRY_DELAYS_MS)):
                    channel = await connection.channel()
                    await channel.queue_delete(queue)


def leftover_pools(cluster: RabbitMQCluster) -> list[str]:
    """Test pool queues nobody consumes: left by an earlier run that was killed mid-test."""
    rows = json.loads(
        cluster.ctl(1, "-q", "list_queues", "name", "consumers", "--formatter", "json")
    )
    bands = {band.suffix for band in replication.BANDS if band.suffix}
    return sorted(
        {
            name.removesuffix(next((b for b in bands if name.endswith(b)), ""))
            for row in rows
            if (name := str(row["name"])).startswith(TEST_QUEUE_PREFIX)
            and not row["consumers"]
            and ".retry." not in name
        }
    )
