"""Names of the RabbitMQ objects that make up the job system.

Producers, workers and the operator all derive names from here. The names match the upstream
SDK's intended contract (``provider.exchange``, ``provider.jobs``, ``provider.results``,
``provider.jobs.dlq``); ``docs/queue-topology.md`` explains each object and why it exists.
"""

from __future__ import annotations

JOB_EXCHANGE = "provider.exchange"
"""Topic exchange jobs are published to, with routing key ``provider.{ns}.{type}.{op}``."""

UNROUTED_EXCHANGE = "provider.unrouted"
"""Alternate exchange of JOB_EXCHANGE: jobs no dedicated queue claims go to the default queue."""

DEAD_LETTER_EXCHANGE = "provider.dlx"
DEAD_LETTER_ROUTING_KEY = "provider.jobs.dlq"
DEAD_LETTER_QUEUE = "provider.jobs.dlq"

DEFAULT_JOB_QUEUE = "provider.jobs"
RESULTS_STREAM = "provider.results"
HEARTBEAT_EXCHANGE = "provider.heartbeats"
HEARTBEAT_SUBSCRIPTION_PREFIX = "provider.heartbeats.watch."
"""Exclusive queues of heartbeat readers (the autoscaler): a prefix a broker user can be
granted, where a client-generated name could not be."""
ARRIVAL_WATCH_PREFIX = "provider.arrivals.watch."
"""Capped queues the autoscaler binds like an idle pool's queue to notice its first job
(``workers.arrivals``): a prefix a broker user can be granted."""
CANCELLATIONS_STREAM = "provider.cancellations"

MAX_PRIORITY = 10


def job_routing_key(provider_namespace: str, resource_type: str, operation: str) -> str:
    return f"provider.{provider_namespace}.{resource_type}.{operation}"


def provider_binding(provider: str) -> str:
    """Binding pattern for a ``Namespace/Type`` provider name (or ``Namespace`` for all types)."""
    namespace, _, resource_type = provider.partition("/")
    if resource_type:
        return f"provider.{namespace}.{resource_type}.*"
    return f"provider.{namespace}.#"


def retry_queue_name(job_queue: str, delay_ms: int) -> str:
    """Delay queue holding a job for ``delay_ms`` before it returns to ``job_queue``."""
    return f"{job_queue}.retry.{delay_ms}ms"
