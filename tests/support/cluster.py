"""The local 3-node RabbitMQ cluster (``tools/rabbitmq/cluster.sh``) as tests see it."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess

from tests.support.services import REPO, unavailable

CLUSTER_SCRIPT = REPO / "tools" / "rabbitmq" / "cluster.sh"
NODES = (1, 2, 3)


def _script(*args: str, timeout: float = 300) -> str:
    done = subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"cluster.sh {' '.join(args)} failed: {done.stdout}{done.stderr}")
    return done.stdout


@dataclasses.dataclass(frozen=True)
class RabbitMQCluster:
    """Three clustered nodes on 127.0.0.1; node N (1-3) can be killed and started again."""

    base_port: int

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
        _script("kill", str(node))

    def stop(self, node: int) -> None:
        _script("stop", str(node))

    def start(self, node: int) -> None:
        """Starts the node and returns once it is back in the cluster."""
        _script("start", str(node))

    def running(self) -> bool:
        try:
            _script("status", timeout=60)
        except RuntimeError:
            return False
        return True

    def ensure_all_up(self) -> None:
        _script("up")

    def ctl(self, node: int, *args: str) -> str:
        return _script("ctl", str(node), *args, timeout=60)

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
    """The running cluster with all three nodes up, or skip (fail under CI=true)."""
    cluster = RabbitMQCluster(int(os.environ.get("ITL_CLUSTER_BASE_PORT", "5701")))
    if not cluster.running():
        try:
            # A previous test may have left a node down; bring the cluster back whole.
            cluster.ensure_all_up()
        except RuntimeError as exc:
            unavailable("RabbitMQ cluster", f"{exc} (start it with `make rabbitmq-cluster-up`)")
    return cluster
