"""The development broker of ``manifests/rabbitmq-dev`` starts with the runtime settings the
project's other brokers use (``tools/rabbitmq/rabbitmq.sh``): Erlang schedulers unbound,
since its pod shares the node's cores with other pods; the stream protocol advertised on the
pod's IP stays in its extra Erlang arguments beside it."""

from __future__ import annotations

from pathlib import Path

import yaml

MANIFEST = Path(__file__).resolve().parents[3] / "manifests" / "rabbitmq-dev" / "rabbitmq.yaml"


def test_the_dev_broker_runs_unbound_schedulers_and_advertises_its_pod_ip() -> None:
    deployment = next(
        d for d in yaml.safe_load_all(MANIFEST.read_text()) if d["kind"] == "Deployment"
    )
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["RABBITMQ_SCHEDULER_BIND_TYPE"] == "u"
    assert "-rabbitmq_stream advertised_host" in env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"]
