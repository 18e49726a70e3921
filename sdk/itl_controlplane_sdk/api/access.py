"""Who may call which route: the bearer-token check and the per-subscription check.

``authenticate`` runs on every ARM and ``/operations`` route and leaves the verified ``Caller``
on the request (for dispatch, which puts the subject into the job envelope, and for the audit
log). ``authorize_subscription`` refuses a subscription in the path the token does not grant
with ARM's 403 ``AuthorizationFailed``. Operations carry no subscription in their path: their
job id is bound to the subscription it was submitted for (``envelope.job_owned_by``), and a
job of another subscription answers 404 like an unknown one, so job ids reveal nothing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from itl_controlplane_sdk.api.auth import (
    ALL_SUBSCRIPTIONS,
    ANONYMOUS,
    Caller,
    IssuerUnavailableError,
    TokenError,
)
from itl_controlplane_sdk.api.context import ApiContext, get_context
from itl_controlplane_sdk.api.errors import ApiError
from itl_controlplane_sdk.workers.envelope import JobCaller, job_owned_by

REALM = "ITL ControlPlane"

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="oidc",
    description="An OpenID Connect access token of AUTH_ISSUER for AUTH_AUDIENCE",
)


def _challenge(error: str | None, description: str) -> str:
    parts = [f'Bearer realm="{REALM}"']
    if error is not None:
        parts.append(f'error="{error}"')
        parts.append('error_description="{}"'.format(description.replace('"', "'")))
    return ", ".join(parts)


def unauthenticated(code: str, message: str, *, error: str | None) -> ApiError:
    """ARM's 401 with the RFC 6750 challenge (``error`` only when a token was sent)."""
    return ApiError(401, code, message, headers={"WWW-Authenticate": _challenge(error, message)})


async def authenticate(
    request: Request,
    context: Annotated[ApiContext, Depends(get_context)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    if context.verifier is None:
        caller = ANONYMOUS
    elif credentials is None:
        raise unauthenticated(
            "AuthenticationFailed",
            "authentication failed: the Authorization header with a Bearer token is missing",
            error=None,
        )
    else:
        try:
            caller = await context.verifier.verify(credentials.credentials)
        except TokenError as exc:
            raise unauthenticated(exc.code, exc.message, error="invalid_token") from None
        except IssuerUnavailableError as exc:
            raise ApiError(
                503,
                "AuthenticationUnavailable",
                f"tokens cannot be verified right now: {exc}",
                headers={"Retry-After": str(context.settings.retry_after)},
            ) from None
    request.state.caller = caller
    return caller


Authenticated = Annotated[Caller, Depends(authenticate)]


async def authorize_subscription(request: Request, caller: Authenticated) -> Caller:
    """The caller, if its token grants the subscription in the path."""
    subscription = str(request.path_params["subscription_id"])
    request.state.subscription = subscription
    if not caller.may_access(subscription):
        raise ApiError(
            403,
            "AuthorizationFailed",
            f"the client {caller.subject!r} has no access to subscription {subscription!r}",
            target=subscription,
        )
    return caller


def job_subscription(caller: Caller, job_id: str) -> str | None:
    """Which of the caller's subscriptions ``job_id`` belongs to; None: not the caller's job.

    A caller granted every subscription gets ``*``: it may read any job, and which
    subscription that is cannot be read from the id alone.
    """
    for subscription in caller.subscriptions:
        if subscription != ALL_SUBSCRIPTIONS and job_owned_by(job_id, subscription):
            return subscription
    return ALL_SUBSCRIPTIONS if ALL_SUBSCRIPTIONS in caller.subscriptions else None


def caller_of(request: Request) -> Caller:
    """The caller ``authenticate`` verified for this request."""
    caller = getattr(request.state, "caller", None)
    assert isinstance(caller, Caller), "authenticate runs on every ARM route"
    return caller


def job_caller(caller: Caller) -> JobCaller:
    """The identity a job envelope carries: subject and issuer, never a credential."""
    return JobCaller(subject=caller.subject, issuer=caller.issuer)
