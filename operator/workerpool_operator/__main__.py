"""``python -m workerpool_operator`` / ``workerpool-operator``: run the operator.

Equivalent to ``kopf run -m workerpool_operator.handlers`` (reconciling plus autoscaling)
with the namespaces, peering, liveness endpoint and logging taken from ``OperatorSettings``:
from the environment, or from the flags ``--help`` lists (a flag overrides its variable).
"""

from __future__ import annotations

from collections.abc import Sequence

import kopf

from itl_controlplane_sdk.cli import Flag, load_settings
from itl_controlplane_sdk.logs import set_levels
from workerpool_operator.settings import OperatorSettings

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

FLAGS = (
    Flag("--namespace", "namespaces", repeat=True),
    Flag("--log-level", "log_level", type=str.upper, choices=LOG_LEVELS),
    Flag("--log-format", "log_format", choices=("plain", "full", "json")),
    Flag("--host", "bind_address"),
    Flag("--metrics-port", "metrics_port", type=int),
    Flag("--health-port", "health_port", type=int),
    Flag("--peering", "peering_name"),
    Flag("--priority", "priority", type=int),
    Flag("--peering-lifetime", "peering_lifetime", type=int),
    Flag("--worker-image", "default_worker_image"),
)

QUIET_LOGGERS = ("kopf.objects",)
"""Kopf logs every handler run per watch event at INFO ("Handler 'x' succeeded"): one line per
pod and Deployment status change. The operator logs what it changed itself."""


def main(argv: Sequence[str] | None = None) -> int:
    settings = load_settings(
        OperatorSettings,
        prog="workerpool-operator",
        description="Run the WorkerPool operator: reconcile pools into Deployments and "
        "autoscale them on queue depth.",
        flags=FLAGS,
        what="operator",
        argv=argv,
    )
    # Kopf installs the handler: its formats name the Kubernetes object a line is about.
    kopf.configure(
        debug=settings.log_level == "DEBUG",
        log_format=kopf.LogFormat[settings.log_format.upper()],
        log_prefix=settings.log_format != "json",
    )
    set_levels(settings.log_level, quiet=QUIET_LOGGERS)

    # Importing registers the Kopf handlers (after kopf.configure, as Kopf expects).
    from workerpool_operator import handlers  # noqa: F401

    liveness = None
    if settings.health_port:
        liveness = f"http://{settings.bind_address}:{settings.health_port}/healthz"
    kopf.run(
        clusterwide=settings.clusterwide,
        namespaces=settings.namespaces,
        standalone=settings.peering_name is None,
        peering_name=settings.peering_name,
        priority=settings.priority,
        liveness_endpoint=liveness,
        memo=kopf.Memo(operator_settings=settings),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
