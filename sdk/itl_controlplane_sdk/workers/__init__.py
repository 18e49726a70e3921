"""The Worker Role system: job queue, workers, registries and offloading.

See ``docs/`` and the API reference for the contract; every name below is part of it.
"""

from itl_controlplane_sdk.contract.settings import WorkerSettings
from itl_controlplane_sdk.errors import (
    BrokerUnavailableError,
    JobFailedError,
    JobSubmissionError,
    JobTimeoutError,
    PermanentJobError,
    ResourceNotFoundError,
    RetryableJobError,
)
from itl_controlplane_sdk.workers.base import WorkerRole
from itl_controlplane_sdk.workers.caller import current_caller
from itl_controlplane_sdk.workers.envelope import JobCaller
from itl_controlplane_sdk.workers.heartbeats import Heartbeat
from itl_controlplane_sdk.workers.offloading import (
    OffloadingProviderRegistry,
    SyncOffloadingProviderRegistry,
)
from itl_controlplane_sdk.workers.provider_worker import ProviderWorker
from itl_controlplane_sdk.workers.queue import JobQueue
from itl_controlplane_sdk.workers.registry import WorkerRegistry
from itl_controlplane_sdk.workers.results import JobResult, JobStatus

__all__ = [
    "BrokerUnavailableError",
    "Heartbeat",
    "JobCaller",
    "JobFailedError",
    "JobQueue",
    "JobResult",
    "JobStatus",
    "JobSubmissionError",
    "JobTimeoutError",
    "OffloadingProviderRegistry",
    "PermanentJobError",
    "ProviderWorker",
    "ResourceNotFoundError",
    "RetryableJobError",
    "SyncOffloadingProviderRegistry",
    "WorkerRegistry",
    "WorkerRole",
    "WorkerSettings",
    "current_caller",
]
