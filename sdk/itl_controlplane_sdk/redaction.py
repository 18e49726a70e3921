"""Keeping credentials out of logs and error messages."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from itl_controlplane_sdk.contract.brokers import split_broker_urls


def redact_url(url: str) -> str:
    """``amqp://user:secret@host/vh`` -> ``amqp://user:***@host/vh``; unparsable -> ``***``.

    A comma-separated list of broker URLs is redacted URL by URL.
    """
    urls = split_broker_urls(url) if url.strip() else [url]
    return ",".join(_redact_one(one) for one in urls)


def _redact_one(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def scrub(text: str, secret: str) -> str:
    """Removes a URL and its password from free text such as a library's exception message."""
    if not secret.strip():
        return text
    text = text.replace(secret, redact_url(secret))
    for url in split_broker_urls(secret):
        text = text.replace(url, _redact_one(url))
        try:
            password = urlsplit(url).password if "://" in url else None
        except ValueError:
            password = None
        if password:
            text = text.replace(password, "***")
    return text
