"""TLS to RabbitMQ: a CA bundle, an optional client certificate, verification always on.

An ``amqps://`` URL alone already gets TLS with the system CAs and hostname checking (aiormq's
default). ``BrokerTls`` adds what a private broker needs: the CA that signed its certificate
and, for brokers that authenticate clients by certificate, the client's certificate and key.
Files, not values: in Kubernetes they come from a mounted Secret. The settings apply to every
``amqps://`` address of a comma-separated ``RABBITMQ_URL`` (the nodes of one cluster share a
CA) and are ignored for ``amqp://`` addresses. There is deliberately no switch to turn
verification off: a broker whose certificate does not verify is refused.

Pure module: stdlib ``ssl`` only, so the settings models can use it without aio-pika.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Self

from pydantic import BaseModel, Field, model_validator


@dataclass(frozen=True)
class BrokerTls:
    """Where the broker's CA and this client's certificate are."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def context(self) -> ssl.SSLContext:
        """A client context that verifies the broker's certificate and host name."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


class BrokerTlsSettings(BaseModel):
    """The ``RABBITMQ_TLS_*`` variables of every process that connects to the broker."""

    rabbitmq_tls_ca_file: str | None = Field(
        default=None,
        validation_alias="RABBITMQ_TLS_CA_FILE",
        description="PEM CA bundle that signed the broker's certificate (default: system CAs).",
    )
    rabbitmq_tls_cert_file: str | None = Field(
        default=None,
        validation_alias="RABBITMQ_TLS_CERT_FILE",
        description="PEM client certificate, for brokers that authenticate clients by it.",
    )
    rabbitmq_tls_key_file: str | None = Field(
        default=None,
        validation_alias="RABBITMQ_TLS_KEY_FILE",
        description="PEM private key of the client certificate (default: in the cert file).",
    )

    @model_validator(mode="after")
    def _key_needs_cert(self) -> Self:
        if self.rabbitmq_tls_key_file and not self.rabbitmq_tls_cert_file:
            raise ValueError("RABBITMQ_TLS_KEY_FILE needs RABBITMQ_TLS_CERT_FILE")
        return self

    @property
    def broker_tls(self) -> BrokerTls | None:
        """The TLS files to use, or None to leave ``amqps://`` at the system defaults."""
        if not (self.rabbitmq_tls_ca_file or self.rabbitmq_tls_cert_file):
            return None
        return BrokerTls(
            self.rabbitmq_tls_ca_file, self.rabbitmq_tls_cert_file, self.rabbitmq_tls_key_file
        )
