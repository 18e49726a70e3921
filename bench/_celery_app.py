"""The Celery side of the throughput benchmark: a no-op task on the same RabbitMQ.

Celery 5 with its usual production shape for I/O-bound work: the threads pool with
concurrency 10 and the ``rpc://`` result backend (results travel back over AMQP to the
caller's reply queue, the closest Celery has to our results stream). Everything else stays
at Celery's defaults (durable queue, persistent task messages, prefetch multiplier 4, ack on
receipt, no publisher confirms), so this is Celery as people run it. Gossip, mingle, worker
heartbeats and remote control are switched off: they only add broker chatter, so Celery is,
if anything, measured slightly faster than it runs by default.

Imported by ``bench/throughput.py`` (the client) and by the worker subprocess it starts::

    python -m celery -A _celery_app worker -P threads -c 10 -Q bench.celery \
        --without-gossip --without-mingle --without-heartbeat -l WARNING

The broker URL comes from ``BENCH_AMQP_URL`` so both sides agree.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

QUEUE = "bench.celery"

app = Celery(
    "bench",
    broker=os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//"),
    backend="rpc://",
)
app.conf.update(
    task_default_queue=QUEUE,
    task_default_exchange=QUEUE,
    task_default_routing_key=QUEUE,
    worker_enable_remote_control=False,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    result_expires=None,
)


@app.task(name="bench.noop")  # type: ignore[untyped-decorator]  # celery ships no types
def noop(request: dict[str, Any]) -> dict[str, Any]:
    """The no-op job: takes a request like our jobs carry and answers with a small dict."""
    return {"status": "completed", "name": request.get("resource_name")}
