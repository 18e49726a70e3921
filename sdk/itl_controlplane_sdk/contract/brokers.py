"""Several broker addresses in one ``RABBITMQ_URL``.

A RabbitMQ cluster is reached through any of its nodes, so the URL setting (the worker's and the
API's ``RABBITMQ_URL``, the WorkerPool Secret's key) may list several AMQP URLs separated by
commas: ``amqp://u:p@node-1:5672/,amqp://u:p@node-2:5672/``. A comma only separates URLs where
the next one starts with ``amqp://`` or ``amqps://``, so commas inside a password or a query
parameter (``amqps://...?ca_certs=/a,b.pem``) stay part of their URL.
"""

from __future__ import annotations

import re

_SEPARATOR = re.compile(r"\s*,\s*(?=amqps?://)", re.IGNORECASE)


def split_broker_urls(value: str) -> list[str]:
    """The URLs in a ``RABBITMQ_URL`` value, in the order given (the first is tried first)."""
    urls = [url for url in _SEPARATOR.split(value.strip()) if url]
    if not urls:
        raise ValueError("no broker URL given: RABBITMQ_URL is empty")
    return urls
