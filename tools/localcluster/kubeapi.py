"""A minimal Kubernetes REST client on the standard library.

Why not the official client: the harness must work before the project's Python dependencies are
installed and must not pin a kubernetes client version for the operator.  The harness needs only a
few calls (readiness, Node creation, TokenRequest), and tests get a direct, dependency-free way to
exercise the API as an arbitrary identity (admin cert or a ServiceAccount token).
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from . import kubeconfig

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"


class ApiError(Exception):
    """An HTTP error status from the API server; ``status`` and the decoded ``body`` are kept."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        message = body.get("message") if isinstance(body, dict) else body
        super().__init__(f"{method} {path} -> {status}: {message}")
        self.status = status
        self.body = body


def _ssl_context(creds: kubeconfig.Credentials) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if creds.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif creds.ca_data:
        ctx.load_verify_locations(cadata=creds.ca_data.decode())
    if creds.cert_data and creds.key_data:
        # load_cert_chain only takes files: write them privately and remove them at once.
        with tempfile.TemporaryDirectory(prefix="itl-kubeapi-") as tmp:
            crt, key = Path(tmp, "c.crt"), Path(tmp, "c.key")
            for path, data in ((crt, creds.cert_data), (key, creds.key_data)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
            ctx.load_cert_chain(crt, key)
    return ctx


class KubeClient:
    """Synchronous JSON client for one API server and one identity."""

    def __init__(self, creds: kubeconfig.Credentials, timeout: float = 30.0) -> None:
        self.creds = creds
        self.timeout = timeout
        url = urlsplit(creds.server)
        self._host = url.hostname or "127.0.0.1"
        self._port = url.port or 443
        self._prefix = url.path.rstrip("/")
        self._ssl = _ssl_context(creds)

    @classmethod
    def from_kubeconfig(cls, path: Path) -> KubeClient:
        """Client for the current context of a kubeconfig file written as JSON."""
        return cls(kubeconfig.credentials(kubeconfig.load(path), base=path.parent))

    def with_token(self, token: str) -> KubeClient:
        """Same server and CA, authenticating with a bearer token instead (no client cert)."""
        creds = kubeconfig.Credentials(
            server=self.creds.server,
            ca_data=self.creds.ca_data,
            insecure=self.creds.insecure,
            cert_data=None,
            key_data=None,
            token=token,
            context=self.creds.context,
            namespace=self.creds.namespace,
        )
        return KubeClient(creds, self.timeout)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, str] | None = None,
        content_type: str = JSON,
        timeout: float | None = None,
    ) -> Any:
        """Send one request; return the decoded JSON (or text) body; raise ApiError on >= 400."""
        target = self._prefix + path + (f"?{urlencode(query)}" if query else "")
        headers = {"Accept": JSON}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        if self.creds.token:
            headers["Authorization"] = f"Bearer {self.creds.token}"
        conn = http.client.HTTPSConnection(
            self._host, self._port, timeout=timeout or self.timeout, context=self._ssl
        )
        try:
            conn.request(method, target, body=payload, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        try:
            decoded: Any = json.loads(raw) if raw else None
        except ValueError:
            decoded = raw.decode(errors="replace")
        if resp.status >= 400:
            raise ApiError(method, path, resp.status, decoded)
        return decoded

    def get(self, path: str, **query: str) -> Any:
        return self.request("GET", path, query=query or None)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body)

    def patch(self, path: str, body: Any) -> Any:
        """JSON merge patch."""
        return self.request("PATCH", path, body, content_type=MERGE_PATCH)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def get_or_none(self, path: str) -> Any:
        """GET that maps 404 to None (handy in wait probes)."""
        try:
            return self.get(path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def raw_text(self, path: str) -> str:
        """GET a non-JSON endpoint such as ``/readyz``."""
        result = self.request("GET", path)
        return result if isinstance(result, str) else json.dumps(result)
