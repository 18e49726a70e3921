"""Our SDK's client in a process of its own, driven like a peer's (``_peer_driver``).

``bench/scaling.py`` runs one to several of these beside one to several SDK workers to see
where the system saturates, and asks them for their RSS after many jobs. Runs with the
project's own python: ``python bench/_sdk_client.py`` with ``BENCH_AMQP_URL``.
"""

from __future__ import annotations

import os

from _peer_driver import main
from _peer_request import REQUEST

from itl_controlplane_sdk.contract.settings import RESULTS_PROTOCOLS
from itl_controlplane_sdk.models import ResourceRequest
from itl_controlplane_sdk.workers import JobQueue, JobStatus

QUEUE = "bench.sdk.jobs"
BINDING = "provider.ITL.Bench.#"
RESULT_TIMEOUT = 30.0


class Client:
    """``submit_job`` then ``get_result``, as an application (or an API replica) does."""

    def __init__(self) -> None:
        protocol = os.environ.get("RESULTS_PROTOCOL", "auto")
        port = os.environ.get("RESULTS_STREAM_PORT")
        self._queue = JobQueue(
            os.environ["BENCH_AMQP_URL"],
            queue_name=QUEUE,
            bindings=[BINDING],
            results_protocol=RESULTS_PROTOCOLS[RESULTS_PROTOCOLS.index(protocol)],
            results_stream_port=int(port) if port else None,
        )
        self._request = ResourceRequest.model_validate(REQUEST)

    async def start(self) -> None:
        await self._queue.connect()

    async def one_job(self) -> None:
        job_id = await self._queue.submit_job("ITL.Bench", "Job", "create", self._request)
        result = await self._queue.get_result(job_id, timeout=RESULT_TIMEOUT)
        if result is None or result.status is not JobStatus.COMPLETED:
            raise RuntimeError(f"job {job_id} did not complete: {result}")

    async def close(self) -> None:
        await self._queue.disconnect()


if __name__ == "__main__":
    main(Client)
