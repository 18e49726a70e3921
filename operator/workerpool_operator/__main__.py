"""``python -m workerpool_operator``: run the operator with settings from the environment.

Equivalent to ``kopf run -m workerpool_operator.handlers -m
workerpool_operator.autoscaler.handlers`` (reconciling plus autoscaling) with the namespaces,
peering, liveness endpoint and logging taken from ``OperatorSettings`` instead of CLI flags.
"""

from __future__ import annotations

import logging

import kopf

from workerpool_operator.settings import OperatorSettings


def main() -> int:
    settings = OperatorSettings()
    kopf.configure(
        debug=settings.log_level == "DEBUG",
        log_format=kopf.LogFormat[settings.log_format.upper()],
        log_prefix=settings.log_format != "json",
    )
    logging.getLogger().setLevel(settings.log_level)
    if settings.log_level != "DEBUG":
        # Kopf logs every handler run per watch event at INFO ("Handler 'x' succeeded"): one
        # line per pod and Deployment status change. The operator logs what it changed itself.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)

    # Importing registers the Kopf handlers: reconciling first, then autoscaling.
    from workerpool_operator import handlers  # noqa: F401
    from workerpool_operator.autoscaler import handlers as autoscaler_handlers  # noqa: F401

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
