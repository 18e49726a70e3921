"""Write and read kubeconfig files without a YAML library.

Why JSON: JSON is valid YAML, so kubectl, helm, client-go and Kopf's ``login_with_kubeconfig``
(which uses ``yaml.safe_load``) all read these files, and the harness stays stdlib-only.
Credentials are inlined (``*-data``) so the file stays valid if the PKI directory moves.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def build(
    *,
    name: str,
    server: str,
    ca_data: str,
    user: dict[str, str],
    namespace: str | None = None,
) -> dict[str, Any]:
    """Return a one-context kubeconfig document; *user* is the kubeconfig ``user`` mapping."""
    context: dict[str, str] = {"cluster": name, "user": name}
    if namespace:
        context["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": name, "cluster": {"server": server, "certificate-authority-data": ca_data}}
        ],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": context}],
        "current-context": name,
        "preferences": {},
    }


def cert_user(crt: Path, key: Path) -> dict[str, str]:
    """Kubeconfig user entry for a client certificate."""
    return {"client-certificate-data": _b64(crt), "client-key-data": _b64(key)}


def ca_data_of(crt: Path) -> str:
    """Base64 of a PEM file, as kubeconfig ``certificate-authority-data`` expects."""
    return _b64(crt)


def write(path: Path, doc: dict[str, Any]) -> Path:
    """Write *doc* with mode 0600 (it holds credentials)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\n")
    return path


@dataclass(frozen=True)
class Credentials:
    """What an HTTP client needs from a kubeconfig's current context."""

    server: str
    ca_data: bytes | None
    insecure: bool
    cert_data: bytes | None
    key_data: bytes | None
    token: str | None
    context: str
    namespace: str | None


def _data(entry: dict[str, Any], key: str, base: Path) -> bytes | None:
    if entry.get(f"{key}-data"):
        return base64.b64decode(entry[f"{key}-data"])
    if entry.get(key):
        p = Path(entry[key])
        return (p if p.is_absolute() else base / p).read_bytes()
    return None


def credentials(doc: dict[str, Any], base: Path = Path()) -> Credentials:
    """Extract the current context's server and credentials from a (JSON) kubeconfig document.

    Supports client certs, bearer tokens (``token``/``tokenFile``) and CA data or files; exec and
    auth-provider plugins are not supported (use ``kubectl`` for such clusters).
    """
    ctx_name = doc.get("current-context") or ""
    by_name = {
        k: {e["name"]: e.get(k[:-1], {}) for e in doc.get(k) or []}
        for k in ("contexts", "clusters", "users")
    }
    ctx = by_name["contexts"].get(ctx_name)
    if ctx is None:
        raise ValueError(f"kubeconfig has no context {ctx_name!r}")
    cluster = by_name["clusters"].get(ctx.get("cluster", ""), {})
    user = by_name["users"].get(ctx.get("user", ""), {}) or {}
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = Path(user["tokenFile"]).read_text().strip()
    return Credentials(
        server=cluster["server"],
        ca_data=_data(cluster, "certificate-authority", base),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        cert_data=_data(user, "client-certificate", base),
        key_data=_data(user, "client-key", base),
        token=token,
        context=ctx_name,
        namespace=ctx.get("namespace"),
    )


def load(path: Path) -> dict[str, Any]:
    """Read a kubeconfig written by :func:`write` (JSON)."""
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc
