"""Verifying OpenID Connect bearer tokens: signature (JWKS), issuer, audience, exp and nbf.

PyJWT does the cryptography and the claim checks; this module finds the keys. The JWKS URL
comes from ``AUTH_JWKS_URL`` or the issuer's discovery document, fetched on first use (so the
API starts while the issuer is down and answers 503 until it is reachable). Keys are cached
for ``AUTH_JWKS_CACHE_SECONDS``; a token with a key id the cache does not know (the issuer
rotated its keys) makes PyJWKClient fetch the JWKS again, at most once per
``AUTH_JWKS_REFETCH_SECONDS``, so made-up key ids cannot turn the API into a load generator
against the issuer. Fetches run in a thread: PyJWKClient uses blocking urllib.

A token that verified is remembered (bounded LRU, ``VERIFIED_CACHE_SIZE``) until it expires
or ``AUTH_JWKS_CACHE_SECONDS`` pass, whichever is first: clients send the same token for its
whole lifetime, and PyJWT's parsing plus an RSA verification cost far more than a dict lookup.

Error messages name what is wrong with a token and never contain the token.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import jwt

from itl_controlplane_sdk.api.settings import ApiSettings

DISCOVERY_PATH = "/.well-known/openid-configuration"
FETCH_TIMEOUT_SECONDS = 10.0
ALL_SUBSCRIPTIONS = "*"
VERIFIED_CACHE_SIZE = 10_000


class TokenError(Exception):
    """The token is not acceptable; ``code`` is the ARM error code, the text says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class IssuerUnavailableError(Exception):
    """The issuer's discovery document or keys could not be fetched (answer 503, not 401)."""


@dataclass(frozen=True)
class Caller:
    """Who is calling, as far as the API can vouch: verified claims, never the token."""

    subject: str
    issuer: str | None
    subscriptions: frozenset[str] = field(default_factory=frozenset)
    """Lower-cased subscription ids the caller may act on; ``*`` means every one."""

    def may_access(self, subscription_id: str) -> bool:
        return (
            ALL_SUBSCRIPTIONS in self.subscriptions or subscription_id.lower() in self.subscriptions
        )


ANONYMOUS = Caller(subject="anonymous", issuer=None, subscriptions=frozenset({ALL_SUBSCRIPTIONS}))
"""The caller of every request under ``AUTH_MODE=none``."""


def granted_subscriptions(
    claims: dict[str, Any], claim: str, claim_map: dict[str, list[str]]
) -> frozenset[str]:
    """The subscriptions a token's ``claim`` grants, through ``claim_map`` when one is set."""
    raw = claims.get(claim)
    values = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
    granted: set[str] = set()
    for value in values:
        if not isinstance(value, str):
            continue
        if claim_map:
            granted.update(item.lower() for item in claim_map.get(value, []))
        else:
            granted.add(value.lower())
    return frozenset(granted)


def _fetch_json(url: str, context: ssl.SSLContext | None) -> Any:
    handlers: list[Any] = [] if context is None else [urllib.request.HTTPSHandler(context=context)]
    opener = urllib.request.build_opener(*handlers)
    with opener.open(url, timeout=FETCH_TIMEOUT_SECONDS) as response:
        return json.load(response)


class TokenVerifier:
    """Turns a bearer token into a ``Caller`` or a ``TokenError`` (one per API process)."""

    def __init__(self, settings: ApiSettings) -> None:
        if not settings.auth_issuer or not settings.auth_audience:
            raise ValueError("token verification needs AUTH_ISSUER and AUTH_AUDIENCE")
        self._settings = settings
        self._issuer = settings.auth_issuer
        self._audience = settings.auth_audience
        self._ssl = (
            ssl.create_default_context(cafile=settings.auth_ca_bundle)
            if settings.auth_ca_bundle
            else None
        )
        self._client: jwt.PyJWKClient | None = None
        self._discovery_failed_at = -float("inf")
        self._lock = asyncio.Lock()
        # key id -> (key, when it was fetched): lets the hot path skip the thread hop.
        self._keys: dict[str, tuple[jwt.PyJWK, float]] = {}
        # token -> (caller, epoch time until which it stays valid): verified tokens.
        self._verified: OrderedDict[str, tuple[Caller, float]] = OrderedDict()

    async def _jwks_client(self) -> jwt.PyJWKClient:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is not None:
                return self._client
            url = self._settings.auth_jwks_url
            if url is None:
                url = await self._discover()
            self._client = jwt.PyJWKClient(
                url,
                cache_keys=False,
                cache_jwk_set=True,
                lifespan=self._settings.auth_jwks_cache_seconds,
                timeout=FETCH_TIMEOUT_SECONDS,
                ssl_context=self._ssl,
                cooldown_duration=self._settings.auth_jwks_refetch_seconds,
            )
            return self._client

    async def _discover(self) -> str:
        if time.monotonic() - self._discovery_failed_at < self._settings.auth_jwks_refetch_seconds:
            raise IssuerUnavailableError("the issuer's discovery document was unreachable")
        url = self._issuer.rstrip("/") + DISCOVERY_PATH
        try:
            document = await asyncio.to_thread(_fetch_json, url, self._ssl)
        except (OSError, ValueError) as exc:
            self._discovery_failed_at = time.monotonic()
            raise IssuerUnavailableError(f"cannot read {url}: {exc}") from None
        if not isinstance(document, dict) or document.get("issuer") != self._issuer:
            self._discovery_failed_at = time.monotonic()
            raise IssuerUnavailableError(f"{url} does not describe issuer {self._issuer}")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri:
            self._discovery_failed_at = time.monotonic()
            raise IssuerUnavailableError(f"{url} names no jwks_uri")
        return jwks_uri

    async def _signing_key(self, kid: str) -> jwt.PyJWK:
        cached = self._keys.get(kid)
        if cached is not None and time.monotonic() - cached[1] < (
            self._settings.auth_jwks_cache_seconds
        ):
            return cached[0]
        client = await self._jwks_client()
        try:
            key = await asyncio.to_thread(client.get_signing_key, kid)
        except (jwt.PyJWKClientConnectionError, jwt.PyJWKSetError) as exc:
            raise IssuerUnavailableError(f"cannot fetch the issuer's signing keys: {exc}") from None
        except jwt.PyJWKClientError:
            raise TokenError(
                "InvalidAuthenticationToken",
                f"the token is signed with key id {kid!r}, which the issuer does not publish",
            ) from None
        self._keys[kid] = (key, time.monotonic())
        return key

    async def verify(self, token: str) -> Caller:
        remembered = self._verified.get(token)
        if remembered is not None:
            if time.time() < remembered[1]:
                self._verified.move_to_end(token)
                return remembered[0]
            del self._verified[token]
        caller, claims = await self._verify(token)
        settings = self._settings
        until = min(
            float(claims["exp"]) + settings.auth_clock_skew,
            time.time() + settings.auth_jwks_cache_seconds,
        )
        self._verified[token] = (caller, until)
        while len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return caller

    async def _verify(self, token: str) -> tuple[Caller, dict[str, Any]]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise TokenError(
                "InvalidAuthenticationToken", "the bearer token is not a JWT"
            ) from None
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenError("InvalidAuthenticationToken", "the token header has no key id (kid)")
        key = await self._signing_key(kid)
        settings = self._settings
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=settings.auth_algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=settings.auth_clock_skew,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("ExpiredAuthenticationToken", "the token has expired") from None
        except jwt.InvalidAudienceError:
            raise TokenError(
                "InvalidAuthenticationTokenAudience",
                f"the token's audience is not {self._audience!r}",
            ) from None
        except jwt.InvalidIssuerError:
            raise TokenError(
                "InvalidAuthenticationTokenIssuer", f"the token's issuer is not {self._issuer!r}"
            ) from None
        except jwt.ImmatureSignatureError:
            raise TokenError("InvalidAuthenticationToken", "the token is not valid yet") from None
        except jwt.InvalidTokenError as exc:
            raise TokenError("InvalidAuthenticationToken", f"invalid token: {exc}") from None
        caller = Caller(
            subject=str(claims["sub"]),
            issuer=self._issuer,
            subscriptions=granted_subscriptions(
                claims, settings.auth_subscriptions_claim, settings.auth_claim_map
            ),
        )
        return caller, claims
