"""A RabbitMQ node of the test's own with a TLS listener, and certificates made for the test.

The node is started by ``tools/rabbitmq/rabbitmq.sh`` under another nodename, ports and data
directory (its ``ITL_RABBITMQ_EXTRA_CONF`` hook adds the TLS listener), so the shared broker on
5672 is never touched. Certificates are generated per run with ``cryptography``: our CA signs
the broker's certificate (for ``localhost`` and 127.0.0.1) and a client certificate; a second,
unrelated CA exists to prove that a broker certificate it did not sign is refused. The broker
requires a client certificate, so a client that does not present one is refused too.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from itl_harness.workers import free_port
from tests.support.own_broker import own_node

Key = ec.EllipticCurvePrivateKey


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(path: Path, certificate: x509.Certificate, key: Key | None = None) -> Path:
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return path


@dataclass
class Authority:
    """A CA that signs certificates for the test."""

    name: str
    key: Key
    certificate: x509.Certificate

    @classmethod
    def create(cls, name: str) -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(name, key, certificate)

    def issue(self, common_name: str, *, server: bool) -> tuple[x509.Certificate, Key]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
        return builder.sign(self.key, hashes.SHA256()), key


@dataclass
class TlsFiles:
    ca: Path
    """Our CA: signed the broker's and the client's certificates."""
    other_ca: Path
    """An unrelated CA: signed nothing the broker presents."""
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def generate(cls, directory: Path) -> TlsFiles:
        directory.mkdir(parents=True, exist_ok=True)
        ours = Authority.create("itl-test-ca")
        other = Authority.create("someone-elses-ca")
        server, server_key = ours.issue("localhost", server=True)
        client, client_key = ours.issue("itl-test-client", server=False)
        return cls(
            ca=_write(directory / "ca.crt", ours.certificate),
            other_ca=_write(directory / "other-ca.crt", other.certificate),
            server_cert=_write(directory / "server.crt", server, server_key),
            server_key=directory / "server.key",
            client_cert=_write(directory / "client.crt", client, client_key),
            client_key=directory / "client.key",
        )


class TlsBroker:
    """One RabbitMQ node of the test's own: plain AMQP and AMQPS, both on 127.0.0.1."""

    def __init__(self, home: Path) -> None:
        self.tls = TlsFiles.generate(home / "certs")
        self.tls_port = free_port()
        extra = home / "tls.conf"
        extra.write_text(
            f"listeners.ssl.default = 127.0.0.1:{self.tls_port}\n"
            f"ssl_options.cacertfile = {self.tls.ca}\n"
            f"ssl_options.certfile = {self.tls.server_cert}\n"
            f"ssl_options.keyfile = {self.tls.server_key}\n"
            "ssl_options.verify = verify_peer\n"
            "ssl_options.fail_if_no_peer_cert = true\n"
        )
        self.node = own_node(home / "node", "itl-tls", extra_conf=extra)

    @property
    def url(self) -> str:
        """AMQPS URL of the node (the host name its certificate names)."""
        return f"amqps://guest:guest@localhost:{self.tls_port}/"

    @property
    def plain_url(self) -> str:
        return self.node.amqp_url
