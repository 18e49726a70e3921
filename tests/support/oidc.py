"""A real, small OpenID Connect issuer for tests: discovery document and JWKS on 127.0.0.1.

Keys are generated per test run (RSA, by ``cryptography``); tokens are signed by PyJWT. The
issuer counts JWKS fetches so tests can see the API's cache and refetch limit at work, and
``rotate`` replaces the published key the way an identity provider rolls its keys.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

AUDIENCE = "api://itl-controlplane-test"


@dataclass
class SigningKey:
    kid: str
    private: rsa.RSAPrivateKey

    @classmethod
    def generate(cls) -> SigningKey:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(kid=uuid.uuid4().hex[:12], private=private)

    def jwk(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        return {**data, "kid": self.kid, "use": "sig", "alg": "RS256"}


class Issuer:
    """Serves ``/.well-known/openid-configuration`` and ``/jwks`` until ``stop``."""

    def __init__(self) -> None:
        self.keys = [SigningKey.generate()]
        self.jwks_fetches = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks"}
                elif self.path == "/jwks":
                    issuer.jwks_fetches += 1
                    body = {"keys": [key.jwk() for key in issuer.keys]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def key(self) -> SigningKey:
        return self.keys[0]

    def rotate(self) -> SigningKey:
        """Publishes a new key instead of the current one; tokens of the old one stop working."""
        self.keys = [SigningKey.generate()]
        return self.key

    def api_env(self, **extra: str) -> dict[str, str]:
        """What an API process needs to trust this issuer."""
        return {"AUTH_MODE": "oidc", "AUTH_ISSUER": self.url, "AUTH_AUDIENCE": AUDIENCE, **extra}

    def token(
        self,
        subject: str = "user-1",
        subscriptions: list[str] | None = None,
        *,
        key: SigningKey | None = None,
        audience: str = AUDIENCE,
        issuer: str | None = None,
        lifetime: float = 300.0,
        not_before: float | None = None,
        **claims: Any,
    ) -> str:
        now = time.time()
        payload: dict[str, Any] = {
            "iss": issuer or self.url,
            "aud": audience,
            "sub": subject,
            "iat": int(now),
            "exp": int(now + lifetime),
            "subscriptions": subscriptions if subscriptions is not None else ["sub-1"],
            **claims,
        }
        if not_before is not None:
            payload["nbf"] = int(not_before)
        signer = key or self.key
        return jwt.encode(payload, signer.private, algorithm="RS256", headers={"kid": signer.kid})


@contextmanager
def running_issuer() -> Iterator[Issuer]:
    issuer = Issuer()
    try:
        yield issuer
    finally:
        issuer.stop()
