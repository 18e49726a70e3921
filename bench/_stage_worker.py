"""The SDK worker of ``latency_stages.py``: ``python -m itl_controlplane_sdk.workers`` with the
stage stamps of ``_stage_probe`` wrapped around it from the outside.

Stamps per job: ``delivered`` (the consumer got the delivery), ``result_start`` (the job ran;
its result goes out), ``result_sent`` (the result's publish frame was handed to the stream
client), ``result_confirmed`` (the broker confirmed it), ``ack_called`` and ``ack_flushed``
(the job's ack was planned, then its frame queued). Written as JSON to ``STAGE_STAMPS`` when
the worker exits (SIGTERM drains it first).
"""

from __future__ import annotations

import atexit
import os
from pathlib import Path
from typing import Any

from _stage_probe import Stamps, wrap_async, wrap_sync

from itl_controlplane_sdk.workers.__main__ import main
from itl_controlplane_sdk.workers.acks import AckBatcher
from itl_controlplane_sdk.workers.consumer import JobConsumer
from itl_controlplane_sdk.workers.queue import JobQueue
from itl_controlplane_sdk.workers.stream_results import ResultAppender

STAMPS = Stamps()
_unsent: list[str] = []
_unflushed: list[str] = []


def _delivered(_consumer: Any, message: Any, **_: Any) -> None:
    STAMPS.watch_loop()
    STAMPS.stamp(message.message_id, "delivered")


def _result_start(_queue: Any, result: Any) -> None:
    STAMPS.stamp(result.job_id, "result_start")


def _result_confirmed(_queue: Any, _returned: Any, result: Any) -> None:
    STAMPS.stamp(result.job_id, "result_confirmed")


def _appended(_appender: Any, message_id: str, _body: bytes, **kwargs: Any) -> None:
    if kwargs.get("confirm", True):
        _unsent.append(message_id)


def _flushing(_appender: Any) -> None:
    for job_id in _unsent:
        STAMPS.stamp(job_id, "result_sent")
    _unsent.clear()


def _acked(_batcher: Any, message: Any) -> None:
    STAMPS.stamp(message.message_id, "ack_called")
    _unflushed.append(message.message_id)


def _ack_flush(_batcher: Any) -> None:
    for job_id in _unflushed:
        STAMPS.stamp(job_id, "ack_flushed")
    _unflushed.clear()


def install() -> None:
    STAMPS.watch_gc()
    wrap_async(JobConsumer, "_on_message", _delivered)
    wrap_async(JobQueue, "publish_result", _result_start, _result_confirmed)
    wrap_async(ResultAppender, "append", _appended)
    wrap_sync(ResultAppender, "_start_flush", _flushing)
    wrap_sync(AckBatcher, "ack", _acked)
    wrap_sync(AckBatcher, "_flush", _ack_flush)
    atexit.register(STAMPS.dump, Path(os.environ["STAGE_STAMPS"]))


if __name__ == "__main__":
    install()
    main()
