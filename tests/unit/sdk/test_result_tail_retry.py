"""A results reader whose node cannot serve the stream yet keeps trying instead of failing.

Right after a rolling restart a node may have no stream member yet, or answer a subscribe only
after rstream's request timeout; ``get_result`` must then wait for the result as usual, not
raise from the subscription.
"""

from __future__ import annotations

import asyncio

import pytest
from rstream.exceptions import StreamNotAvailable

from itl_controlplane_sdk.workers import result_store
from itl_controlplane_sdk.workers.result_store import (
    RecordHandler,
    ResultReader,
    StreamNotReadableError,
)
from itl_controlplane_sdk.workers.stream_results import (
    StreamEndpoint,
    StreamEndpoints,
    StreamSubscription,
)


class OpenedTail:
    async def close(self) -> None:
        pass


async def test_a_tail_the_node_cannot_serve_yet_is_retried_in_the_background(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(result_store, "TAIL_RETRY_SECONDS", 0.01)
    attempts = 0

    async def subscribe(since: float, on_record: RecordHandler) -> OpenedTail:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise StreamNotReadableError("no stream member on this node yet")
        return OpenedTail()

    reader = ResultReader(subscribe, cache_size=10, lookback_seconds=60)
    await reader.start()  # does not raise

    deadline = asyncio.get_running_loop().time() + 5
    while attempts < 3 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    assert attempts == 3
    assert await reader.wait_for("job-never-submitted", 0.05) is None
    await reader.stop()


@pytest.mark.parametrize("failure", [TimeoutError(), StreamNotAvailable("stream not available")])
async def test_a_node_that_cannot_serve_a_subscribe_yet_reads_as_not_readable(
    failure: Exception,
) -> None:
    endpoints = StreamEndpoints([StreamEndpoint.from_amqp_url("amqp://g:g@127.0.0.1:5701/")])

    async def no_record(
        message_id: str | None, kind: str | None, body: bytes, offset: int, stored: float | None
    ) -> bool:
        return False

    subscription = StreamSubscription(endpoints, "provider.results", no_record, name="test")

    # A stand-in for the broker (the only one here): the connection opens, the subscribe
    # fails as a node just restarted answers it, which no test can bring about on demand.
    async def connected(entity: object) -> None:
        pass

    async def subscribe(*args: object, **kwargs: object) -> None:
        raise failure

    endpoints.start = connected  # type: ignore[method-assign]
    subscription._consumer.subscribe = subscribe  # type: ignore[method-assign]

    with pytest.raises(StreamNotReadableError, match=r"127\.0\.0\.1:5581"):
        await subscription.open(since=0)
