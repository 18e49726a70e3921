"""The audit log: one line per mutating request and per operation read.

Logger ``itl_controlplane_sdk.audit``, one JSON object per line after ``audit``: who (the
token's subject and issuer, ``anonymous`` without authentication, ``unauthenticated`` when the
token was refused), what (method and path, no query string), which subscription, the outcome
(HTTP status) and the job id of an offloaded operation. It never reads the Authorization
header, so no token can reach it. A plain ASGI middleware, outermost, so refusals by the
body-size limit and by authentication are recorded too.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from itl_controlplane_sdk.api.auth import Caller

log = logging.getLogger("itl_controlplane_sdk.audit")

MUTATING = frozenset({"PUT", "POST", "DELETE", "PATCH"})
OPERATIONS_PREFIX = "/operations/"


def audited(method: str, path: str) -> bool:
    return method in MUTATING or (method == "GET" and path.startswith(OPERATIONS_PREFIX))


def record(scope: Scope, state: dict[str, Any], status: int) -> dict[str, Any]:
    caller = state.get("caller")
    client = scope.get("client")
    return {
        "subject": caller.subject if isinstance(caller, Caller) else "unauthenticated",
        "issuer": caller.issuer if isinstance(caller, Caller) else None,
        "method": scope["method"],
        "path": scope["path"],
        "subscription": state.get("subscription"),
        "status": status,
        "outcome": "succeeded" if status < 400 else "refused" if status < 500 else "failed",
        "job_id": state.get("job_id"),
        "client": client[0] if client else None,
    }


class AuditLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not audited(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        # Routes write request.state into this dict, shared by every copy of the scope.
        state: dict[str, Any] = scope.setdefault("state", {})
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            log.info("audit %s", json.dumps(record(scope, state, status), sort_keys=True))
