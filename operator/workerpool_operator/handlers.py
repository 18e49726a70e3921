"""The thin Kopf layer: decorators that hand every trigger to the two runtimes.

``kopf run -m workerpool_operator.handlers`` or ``python -m workerpool_operator`` loads this
module, the operator's only Kopf module. Handlers translate between Kopf and the operator and
nothing else: the startup handler configures Kopf and builds the ``Runtime`` (reconciling) and
the autoscaler's ``Supervisor`` over one Kubernetes client, one pool cache and one event
poster; the one WorkerPool watch feeds the cache both read; pool create/update/resume
reconcile and turn failures into Kopf retries with exponential backoff; watching the managed
Deployments repairs drift and refreshes status; the cleanup handler stops the autoscaler and
closes the client.

Why a Kopf index for pods: Kopf starts handlers only after every index has been populated.
So the first poll after a restart already sees every pod of the pool, and a pod the
autoscaler has not seen can never be mistaken for a replica with no pod (which would be
"safe to remove").

Kopf persistence is kept in annotations and handlers return None, because the strict,
generated status schema would prune anything Kopf wrote to ``status``. No handler requires a
finalizer, so pools can be deleted even while the operator is not running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from workerpool_operator import api, scaling
from workerpool_operator.autoscaler import observe
from workerpool_operator.autoscaler.broker import BrokerHub
from workerpool_operator.autoscaler.cluster import AutoscalerKube
from workerpool_operator.autoscaler.metrics import AutoscalerMetrics
from workerpool_operator.autoscaler.supervisor import Supervisor
from workerpool_operator.kube import Kube, KubeError
from workerpool_operator.labels import (
    LABEL_MANAGED_BY,
    LABEL_POOL,
    MANAGED_BY,
    MANAGED_SELECTOR,
)
from workerpool_operator.metrics import OperatorMetrics, serve
from workerpool_operator.pools import PoolCache, PoolKey
from workerpool_operator.runtime import Runtime
from workerpool_operator.settings import OperatorSettings

DISCOVERY_TIMEOUT_SECONDS = 30.0

logger = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 300.0


def backoff(retry: int) -> float:
    """Delay before retry number ``retry``: 5 s doubling, capped at five minutes."""
    return float(min(5.0 * 2 ** min(retry, 10), MAX_BACKOFF_SECONDS))


def post_event(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    """Record an Event on the pool through Kopf's event poster (batched, retried)."""
    try:
        kopf.event(dict(body), type=type_, reason=reason, message=message)  # type: ignore[arg-type]
    except LookupError:  # outside an operator context (e.g. tests calling handlers directly)
        logger.info("event %s %s: %s", type_, reason, message)


def _runtime(memo: Any) -> Runtime:
    runtime: Runtime = memo.runtime
    return runtime


def _supervisor(memo: Any) -> Supervisor:
    supervisor: Supervisor = memo.autoscaler
    return supervisor


def configure_kopf(settings: kopf.OperatorSettings, operator_settings: OperatorSettings) -> None:
    """Kopf settings this operator depends on (see the module docstring for why)."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=api.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=api.GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{api.GROUP}/finalizer"
    settings.posting.loggers = False
    settings.posting.level = logging.INFO
    # Only the Deployments and pods this operator manages, filtered by the API server.
    settings.watching.label_selectors["apps", "deployments"] = MANAGED_SELECTOR
    settings.watching.label_selectors["v1", "pods"] = MANAGED_SELECTOR
    # The WorkerPool CRD is installed before the operator, so watching CRDs and namespaces
    # (and the RBAC for it) is needed only to resolve namespace patterns such as "team-*".
    settings.scanning.disabled = not operator_settings.namespace_patterns
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    # Set before Kopf's peering keep-alives start (they wait for the startup handlers).
    settings.peering.lifetime = operator_settings.peering_lifetime


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    operator_settings = memo.get("operator_settings") or OperatorSettings()
    configure_kopf(settings, operator_settings)
    metrics = memo.get("metrics") or OperatorMetrics()
    if operator_settings.metrics_port and not memo.get("metrics"):
        serve(operator_settings.metrics_port, operator_settings.bind_address)
    kube = await Kube.connect()
    await _wait_for_discovery(kube)
    pools = PoolCache()
    runtime = Runtime(
        settings=operator_settings,
        kube=kube,
        metrics=metrics,
        post_event=post_event,
        pools=pools,
    )
    memo.runtime = runtime
    memo.autoscaler = Supervisor(
        pools=pools,
        cluster=AutoscalerKube.sharing(kube),
        # amqps:// brokers of every pool are verified with the operator's RABBITMQ_TLS_* files.
        broker=BrokerHub(tls=operator_settings.broker_tls),
        metrics=AutoscalerMetrics(),
        post=post_event,
    )
    memo.resync_task = asyncio.create_task(runtime.resync_forever(), name="workerpool-resync")
    logger.info(
        "WorkerPool operator started (default image %s, resync every %ss)",
        operator_settings.default_worker_image,
        operator_settings.resync_seconds,
    )


async def _wait_for_discovery(kube: Kube) -> None:
    """Kopf scans API discovery once, right after startup: make sure WorkerPools are in it.

    Installing the CRD and starting the operator together (helm install, a test session)
    can otherwise leave the operator blind to WorkerPools until an unrelated CRD event.
    """
    deadline = asyncio.get_running_loop().time() + DISCOVERY_TIMEOUT_SECONDS
    while not await kube.discovers(api.API_VERSION, api.PLURAL):
        if asyncio.get_running_loop().time() > deadline:
            logger.warning(
                "%s/%s is not in API discovery after %ss: is the CRD installed?",
                api.API_VERSION,
                api.PLURAL,
                DISCOVERY_TIMEOUT_SECONDS,
            )
            return
        await asyncio.sleep(0.5)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    task: asyncio.Task[None] | None = memo.get("resync_task")
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    supervisor: Supervisor | None = memo.get("autoscaler")
    if supervisor is not None:
        await supervisor.close()
    runtime: Runtime | None = memo.get("runtime")
    if runtime is not None:
        await runtime.kube.close()


@kopf.index("v1", "pods", labels={LABEL_POOL: kopf.PRESENT})
def autoscaler_pods(
    namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
) -> dict[PoolKey, scaling.PodView]:
    """Pods by (namespace, pool), reduced to what scale-down safety needs."""
    return {(str(namespace), labels[LABEL_POOL]): observe.pod_view(body)}


@kopf.on.event(api.GROUP, api.VERSION, api.PLURAL)
async def track_pool(type: str | None, body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    """The one WorkerPool watch: update the shared cache, then start or stop autoscaling.

    Async on purpose: Kopf runs sync handlers in a thread, and the runtimes' state (and the
    poll tasks) belong to the event loop. The pod index arrives as the ``autoscaler_pods``
    keyword (Kopf passes every index by its function's name).
    """
    pods: kopf.Index[PoolKey, scaling.PodView] = kwargs["autoscaler_pods"]
    key = _runtime(memo).track(type, body)
    _supervisor(memo).track(key, pods)


@kopf.on.resume(api.GROUP, api.VERSION, api.PLURAL)
@kopf.on.create(api.GROUP, api.VERSION, api.PLURAL)
@kopf.on.update(api.GROUP, api.VERSION, api.PLURAL)
async def reconcile_pool(body: kopf.Body, retry: int, memo: kopf.Memo, **_: Any) -> None:
    """Make the pool's children match its spec; retry failures with backoff."""
    try:
        outcome = await _runtime(memo).reconcile(body)
    except KubeError as exc:
        raise kopf.TemporaryError(str(exc), delay=backoff(retry)) from exc
    if outcome.failure is None:
        return
    if outcome.failure.permanent:
        raise kopf.PermanentError(f"{outcome.failure.reason}: {outcome.failure.message}")
    raise kopf.TemporaryError(
        f"{outcome.failure.reason}: {outcome.failure.message}", delay=backoff(retry)
    )


@kopf.on.event("apps", "v1", "deployments", labels={LABEL_MANAGED_BY: MANAGED_BY})
async def deployment_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A managed Deployment changed or vanished: repair drift or refresh the pool's status."""
    try:
        await _runtime(memo).on_deployment(type, body)
    except KubeError as exc:
        # Event handlers are not retried by Kopf; the resync or the next event will be.
        logger.warning("handling Deployment %s failed: %s", body.get("metadata", {}), exc)
