"""Certificates and keys for a throw-away control plane, made with the ``openssl`` CLI.

Why openssl and not a Python library: it is on every Debian machine, adds no Python dependency, and
the harness needs only a handful of files per run.  Layout written under ``<run>/pki``:

* ``ca.crt/ca.key``             — one CA that signs the serving cert and every client cert;
* ``apiserver.crt/.key``        — serving cert (the apiserver finds it through ``--cert-dir``);
* ``admin.crt/.key``            — client cert ``CN=admin, O=system:masters``;
* ``front-proxy-client.crt/.key`` — the aggregation layer's proxy identity (requestheader auth);
* ``sa.key/sa.pub``             — ServiceAccount token signing key pair.

Keys are EC P-256: generating them is instant, unlike RSA on a busy 2-core machine.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import ClusterUnavailable

SERVING_SANS = (
    "IP:127.0.0.1",
    "DNS:localhost",
    "IP:10.0.0.1",
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
    "DNS:kubernetes.default.svc.cluster.local",
)
VALID_DAYS = 30
FRONT_PROXY_USER = "front-proxy-client"


def _openssl(*args: str, cwd: Path) -> None:
    try:
        subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise ClusterUnavailable("the `openssl` CLI is required to create cluster certs") from exc
    except subprocess.CalledProcessError as exc:
        raise ClusterUnavailable(f"openssl {' '.join(args)} failed: {exc.stderr.strip()}") from exc


def _ec_key(path: Path) -> None:
    _openssl(
        "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", path.name, cwd=path.parent
    )
    path.chmod(0o600)


@dataclass(frozen=True)
class Pki:
    """Paths of the generated PKI files."""

    dir: Path

    @property
    def ca_crt(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    @property
    def serving_crt(self) -> Path:
        return self.dir / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.dir / "apiserver.key"

    @property
    def admin_crt(self) -> Path:
        return self.dir / "admin.crt"

    @property
    def admin_key(self) -> Path:
        return self.dir / "admin.key"

    @property
    def front_proxy_crt(self) -> Path:
        return self.dir / "front-proxy-client.crt"

    @property
    def front_proxy_key(self) -> Path:
        return self.dir / "front-proxy-client.key"

    @property
    def sa_key(self) -> Path:
        return self.dir / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.dir / "sa.pub"

    def issue(self, name: str, subject: str, extensions: list[str]) -> tuple[Path, Path]:
        """Sign a new cert/key pair ``<name>.crt/.key`` with the CA (e.g. for extra users)."""
        key, csr, crt = (self.dir / f"{name}.{ext}" for ext in ("key", "csr", "crt"))
        ext_file = self.dir / f"{name}.ext"
        _ec_key(key)
        _openssl("req", "-new", "-key", key.name, "-subj", subject, "-out", csr.name, cwd=self.dir)
        ext_file.write_text("\n".join(extensions) + "\n")
        _openssl(
            "x509", "-req", "-in", csr.name, "-CA", self.ca_crt.name, "-CAkey", self.ca_key.name,
            "-CAcreateserial", "-days", str(VALID_DAYS), "-sha256", "-extfile", ext_file.name,
            "-out", crt.name, cwd=self.dir,
        )  # fmt: skip
        csr.unlink()
        ext_file.unlink()
        return crt, key

    def client_cert(self, name: str, user: str, groups: tuple[str, ...] = ()) -> tuple[Path, Path]:
        """Issue a client cert authenticating as *user* in *groups* (O= fields)."""
        subject = "".join(f"/O={g}" for g in groups) + f"/CN={user}"
        return self.issue(
            name,
            subject,
            ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature",
             "extendedKeyUsage=clientAuth"],
        )  # fmt: skip


def create(directory: Path) -> Pki:
    """Create a fresh CA, serving cert, admin client cert and SA key pair in *directory*."""
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(directory)
    _ec_key(pki.ca_key)
    _openssl(
        "req", "-x509", "-new", "-key", pki.ca_key.name, "-subj", "/CN=itl-localcluster-ca",
        "-days", str(VALID_DAYS), "-sha256", "-out", pki.ca_crt.name,
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        cwd=directory,
    )  # fmt: skip
    pki.issue(
        "apiserver",
        "/CN=kube-apiserver",
        ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment",
         "extendedKeyUsage=serverAuth", "subjectAltName=" + ",".join(SERVING_SANS)],
    )  # fmt: skip
    pki.client_cert("admin", "admin", ("system:masters",))
    pki.client_cert("front-proxy-client", FRONT_PROXY_USER)
    _ec_key(pki.sa_key)
    _openssl("ec", "-in", pki.sa_key.name, "-pubout", "-out", pki.sa_pub.name, cwd=directory)
    return pki
