"""Authentication and authorization of the real API process against a real local OIDC issuer.

The API runs in-process mode (no broker needed): the token checks sit in front of every ARM
route the same way in both modes. What offloading adds (job ids bound to subscriptions, the
caller in the envelope) is in ``test_api_auth_offloading.py``.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from itl_harness.workers import free_port
from tests.integration.api.apiprocess import ApiProcess
from tests.support.oidc import AUDIENCE, Issuer, SigningKey, running_issuer

V = "api-version=2023-01-01"


def group(subscription: str = "sub-1", name: str = "rg-1") -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{name}?{V}"


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with running_issuer() as running:
        yield running


@pytest.fixture(scope="module")
def api(issuer: Issuer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    env = issuer.api_env(
        AUTH_JWKS_REFETCH_SECONDS="1",
    )
    process = ApiProcess("api-auth", tmp_path_factory.mktemp("auth"), env=env).start()
    yield process
    process.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refused(response: httpx.Response, code: str) -> str:
    """Asserts an ARM 401 with ``code`` and returns the WWW-Authenticate challenge."""
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == code
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="ITL ControlPlane"')
    return challenge


def test_a_valid_token_for_the_subscription_is_served(api: ApiProcess, issuer: Issuer) -> None:
    with api.client() as client:
        created = client.put(group(), json={"location": "we"}, headers=bearer(issuer.token()))
        assert created.status_code == 201, created.text
        read = client.get(group(), headers=bearer(issuer.token()))
        assert read.status_code == 200, read.text


def test_a_request_without_token_gets_a_bearer_challenge(api: ApiProcess) -> None:
    with api.client() as client:
        challenge = refused(client.get(group()), "AuthenticationFailed")
        assert "error=" not in challenge  # RFC 6750: no error code when no token was sent
        refused(
            client.put(group(), json={}, headers={"Authorization": "Basic dXNlcjpwdw=="}),
            "AuthenticationFailed",
        )
        refused(client.get("/operations/x"), "AuthenticationFailed")
        assert client.get("/health").status_code == 200  # probes need no token


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("expired", "ExpiredAuthenticationToken"),
        ("not_yet_valid", "InvalidAuthenticationToken"),
        ("wrong_audience", "InvalidAuthenticationTokenAudience"),
        ("wrong_issuer", "InvalidAuthenticationTokenIssuer"),
        ("tampered", "InvalidAuthenticationToken"),
        ("unknown_kid", "InvalidAuthenticationToken"),
        ("no_subject", "InvalidAuthenticationToken"),
        ("garbage", "InvalidAuthenticationToken"),
    ],
)
def test_bad_tokens_are_refused(api: ApiProcess, issuer: Issuer, case: str, code: str) -> None:
    now = time.time()
    match case:
        case "expired":
            token = issuer.token(lifetime=-120)  # beyond the 60 s clock-skew allowance
        case "not_yet_valid":
            token = issuer.token(not_before=now + 600)
        case "wrong_audience":
            token = issuer.token(audience="api://someone-else")
        case "wrong_issuer":
            token = issuer.token(issuer="https://issuer.invalid")
        case "tampered":
            header, payload, signature = issuer.token(subscriptions=["sub-1"]).split(".")
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            claims["subscriptions"] = ["*"]
            forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
            token = f"{header}.{forged}.{signature}"
        case "unknown_kid":
            token = issuer.token(key=SigningKey.generate())
        case "no_subject":
            token = jwt.encode(
                {"iss": issuer.url, "aud": "api://itl-controlplane-test", "exp": int(now) + 60},
                issuer.key.private,
                algorithm="RS256",
                headers={"kid": issuer.key.kid},
            )
        case _:
            token = "not.a.jwt"
    with api.client() as client:
        response = client.put(group(), json={"location": "we"}, headers=bearer(token))
        challenge = refused(response, code)
        assert 'error="invalid_token"' in challenge
        assert token not in response.text
        assert token not in challenge


def test_clock_skew_allowance_accepts_a_just_expired_token(api: ApiProcess, issuer: Issuer) -> None:
    with api.client() as client:
        response = client.get(group(), headers=bearer(issuer.token(lifetime=-10)))
        assert response.status_code in (200, 404), response.text


def test_a_remembered_token_stops_working_when_it_expires(issuer: Issuer, tmp_path: Path) -> None:
    env = issuer.api_env(AUTH_CLOCK_SKEW_SECONDS="0")
    api = ApiProcess("api-expiry", tmp_path, env=env).start()
    try:
        token = bearer(issuer.token(lifetime=3))
        with api.client() as client:
            assert client.get(group(), headers=token).status_code != 401
            assert client.get(group(), headers=token).status_code != 401  # remembered
            deadline = time.monotonic() + 15
            status = 0
            while time.monotonic() < deadline:
                status = client.get(group(), headers=token).status_code
                if status == 401:
                    break
                time.sleep(0.2)
            assert status == 401
    finally:
        api.stop()


def test_a_token_refused_for_another_subscription(api: ApiProcess, issuer: Issuer) -> None:
    token = issuer.token(subscriptions=["sub-1"])
    with api.client() as client:
        response = client.put(group("sub-2"), json={"location": "we"}, headers=bearer(token))
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "AuthorizationFailed"
        assert client.get(group("SUB-1"), headers=bearer(token)).status_code != 403
        action = client.post(
            f"/subscriptions/sub-2/resourceGroups/rg/providers/ITL.Core/ResourceGroup/rg/x?{V}",
            headers=bearer(token),
        )
        assert action.status_code == 403


def test_rotated_keys_are_fetched_and_made_up_key_ids_do_not_flood_the_issuer(
    api: ApiProcess, issuer: Issuer
) -> None:
    with api.client() as client:
        assert client.get(group(), headers=bearer(issuer.token())).status_code != 401
        new_key = issuer.rotate()
        # The old key is gone from the JWKS; a token of the new key is accepted once the API
        # refetches (at most once per AUTH_JWKS_REFETCH_SECONDS=1).
        deadline = time.monotonic() + 10
        status = 0
        while time.monotonic() < deadline:
            status = client.get(group(), headers=bearer(issuer.token(key=new_key))).status_code
            if status != 401:
                break
            time.sleep(0.2)
        assert status != 401
        before = issuer.jwks_fetches
        started = time.monotonic()
        for _ in range(30):
            made_up = issuer.token(key=SigningKey.generate())
            refused(client.get(group(), headers=bearer(made_up)), "InvalidAuthenticationToken")
        elapsed = time.monotonic() - started
        assert issuer.jwks_fetches - before <= elapsed / 1.0 + 1


def test_audit_log_records_who_did_what_and_never_the_token(
    api: ApiProcess, issuer: Issuer
) -> None:
    token = issuer.token(subject="auditor-7", subscriptions=["sub-9"])
    with api.client() as client:
        assert client.put(group("sub-9", "rg-a"), json={}, headers=bearer(token)).status_code == 201
        assert client.delete(group("sub-8", "rg-a"), headers=bearer(token)).status_code == 403
        assert client.delete(group("sub-9", "rg-a"), headers=bearer("x" + token)).status_code == 401
    deadline = time.monotonic() + 5
    records: list[dict[str, object]] = []
    while time.monotonic() < deadline and len(records) < 3:
        records = [
            json.loads(line[line.index(" audit {") + 7 :])
            for line in api.log().splitlines()
            if " audit {" in line and ("sub-9" in line or "sub-8" in line)
        ]
        time.sleep(0.05)
    assert [(r["method"], r["subscription"], r["status"], r["subject"]) for r in records] == [
        ("PUT", "sub-9", 201, "auditor-7"),
        ("DELETE", "sub-8", 403, "auditor-7"),
        ("DELETE", None, 401, "unauthenticated"),
    ]
    assert records[0]["outcome"] == "succeeded"
    assert records[1]["outcome"] == "refused"
    assert token.split(".")[2] not in api.log()


def test_claim_map_grants_subscriptions_by_role(issuer: Issuer, tmp_path: Path) -> None:
    env = issuer.api_env(
        AUTH_SUBSCRIPTIONS_CLAIM="roles",
        AUTH_CLAIM_MAP=json.dumps({"team-a": ["sub-a1", "sub-a2"], "admins": ["*"]}),
    )
    api = ApiProcess("api-roles", tmp_path, env=env).start()
    try:
        with api.client() as client:
            team = bearer(issuer.token(roles=["team-a", "unmapped"], subscriptions=["sub-x"]))
            assert client.get(group("sub-a2"), headers=team).status_code != 403
            assert client.get(group("sub-x"), headers=team).status_code == 403
            admin = bearer(issuer.token(roles="admins"))
            assert client.get(group("anything"), headers=admin).status_code != 403
    finally:
        api.stop()


def test_the_api_refuses_to_start_without_an_issuer() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTH_")}
    done = subprocess.run(
        [sys.executable, "-m", "itl_controlplane_sdk.api", "--port", "0"],
        env={**env, "AUTH_MODE": "oidc"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "needs AUTH_ISSUER and AUTH_AUDIENCE" in done.stderr


def test_auth_mode_none_warns_loudly(tmp_path: Path) -> None:
    api = ApiProcess("api-open", tmp_path, env={"AUTH_MODE": "none"}).start()
    try:
        with api.client() as client:
            assert client.put(group("any"), json={}).status_code == 201
        assert "AUTH_MODE=none: AUTHENTICATION IS OFF" in api.log()
    finally:
        api.stop()


def test_an_unreachable_issuer_answers_503_not_401(issuer: Issuer, tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: the issuer is down
    env = {"AUTH_MODE": "oidc", "AUTH_ISSUER": closed, "AUTH_AUDIENCE": AUDIENCE}
    api = ApiProcess("api-issuer-down", tmp_path, env=env).start()  # starts anyway
    try:
        with api.client() as client:
            response = client.get(group(), headers=bearer(issuer.token(issuer=closed)))
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "AuthenticationUnavailable"
        assert response.headers["Retry-After"]
    finally:
        api.stop()
