"""Keeping credentials out of logs and error messages."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact_url(url: str) -> str:
    """``amqp://user:secret@host/vh`` -> ``amqp://user:***@host/vh``; unparsable -> ``***``."""
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
    if not secret:
        return text
    text = text.replace(secret, redact_url(secret))
    password = urlsplit(secret).password if "://" in secret else None
    if password:
        text = text.replace(password, "***")
    return text
