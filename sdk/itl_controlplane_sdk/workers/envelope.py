"""The versioned JSON envelope of a job message.

Fields match the upstream job schema (job_id, provider_namespace, resource_type, operation,
request, submitted_at, priority) and add what reliable delivery needs: ``version`` to evolve the
format, ``attempt`` for bounded retries and ``deadline`` so stale work can be refused, and
``caller``, who asked for the job (the identity an authenticated API saw, never a credential), so
providers and audit trails can tell who acted.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from itl_controlplane_sdk.contract.settings import DEFAULT_MAX_JOB_BYTES
from itl_controlplane_sdk.errors import UndecodableJobError
from itl_controlplane_sdk.models import ResourceRequest
from itl_controlplane_sdk.validation import describe

ENVELOPE_VERSION = 1

Operation = Literal["create", "get", "list", "delete", "action"]
OPERATIONS: tuple[Operation, ...] = ("create", "get", "list", "delete", "action")


class JobCaller(BaseModel):
    """Who submitted a job: the token's subject and issuer as the API verified them."""

    model_config = ConfigDict(extra="ignore")

    subject: str = Field(min_length=1, max_length=256)
    issuer: str | None = Field(default=None, max_length=512)


class JobEnvelope(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: int = ENVELOPE_VERSION
    job_id: str = Field(min_length=1, max_length=128)
    provider_namespace: str = Field(min_length=1)
    resource_type: str = Field(min_length=1)
    operation: Operation
    request: ResourceRequest
    priority: int = Field(default=5, ge=0, le=10)
    attempt: int = Field(default=1, ge=1)
    submitted_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    deadline: datetime | None = None
    caller: JobCaller | None = None

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()


JSON_CONTENT_TYPE = "application/json"


def check_delivery(
    body: bytes, content_type: str | None, content_encoding: str | None, max_bytes: int
) -> None:
    """Refuses, before any parsing, what is not a job message: too big, not JSON, encoded.

    A job must say ``content_type=application/json`` (``charset=utf-8`` allowed) as every
    publisher of this SDK does: a message labelled anything else, or nothing, was published
    by something that does not speak the job format, and running it on a guess could run
    the wrong thing. It goes to the DLQ with the reason instead.
    """
    if len(body) > max_bytes:
        raise UndecodableJobError(
            f"message body of {len(body)} bytes exceeds MAX_JOB_BYTES={max_bytes}"
        )
    if not content_type:
        raise UndecodableJobError(f"message has no content type; a job is {JSON_CONTENT_TYPE}")
    media_type, *parameters = (part.strip().lower() for part in content_type.split(";"))
    charset = next(
        (p.partition("=")[2].strip('"') for p in parameters if p.startswith("charset=")), "utf-8"
    )
    if media_type != JSON_CONTENT_TYPE or charset not in ("utf-8", "utf8"):
        raise UndecodableJobError(
            f"content type {content_type[:100]!r} is not {JSON_CONTENT_TYPE} (UTF-8)"
        )
    if content_encoding and content_encoding.lower() != "identity":
        raise UndecodableJobError(f"unsupported content encoding {content_encoding[:100]!r}")


def decode_delivery(
    body: bytes,
    *,
    content_type: str | None,
    content_encoding: str | None = None,
    max_bytes: int = DEFAULT_MAX_JOB_BYTES,
) -> JobEnvelope:
    """The envelope of a delivered job; every way of failing is an UndecodableJobError.

    A worker must never hold a message it cannot handle: an exception escaping here would
    leave the delivery unacknowledged and its concurrency slot taken for good.
    """
    check_delivery(body, content_type, content_encoding, max_bytes)
    return decode_job(body)


def decode_job(body: bytes) -> JobEnvelope:
    """The envelope in ``body``; every way of failing is an UndecodableJobError.

    Redrive and the worker both call it on whatever sits in a queue, so nothing else may
    escape: deep nesting makes the JSON parser raise RecursionError, a huge body MemoryError.
    """
    try:
        return _decode_job(body)
    except UndecodableJobError:
        raise
    except RecursionError:
        raise UndecodableJobError("message body nests too deeply to be a job envelope") from None
    except MemoryError:
        raise UndecodableJobError("message body too large to decode in memory") from None
    except Exception as exc:
        raise UndecodableJobError(f"message body cannot be decoded: {type(exc).__name__}") from None


def _decode_job(body: bytes) -> JobEnvelope:
    # Fast path for the well-formed message a worker sees almost always: pydantic parses and
    # validates the JSON in one pass. Anything it refuses takes the slow path below, which
    # produces the detailed reason a dead letter carries.
    try:
        envelope = JobEnvelope.model_validate_json(body)
    except ValidationError:
        pass
    else:
        if envelope.version == ENVELOPE_VERSION:
            return envelope
    try:
        data: Any = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UndecodableJobError(f"message body is not JSON (not UTF-8): {exc}") from None
    except json.JSONDecodeError as exc:
        raise UndecodableJobError(f"message body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UndecodableJobError("message body is not a JSON object")
    version = data.get("version", ENVELOPE_VERSION)
    if version != ENVELOPE_VERSION:
        raise UndecodableJobError(f"unsupported job envelope version {version!r}"[:120])
    try:
        return JobEnvelope.model_validate(data)
    except ValidationError as exc:
        raise UndecodableJobError(f"invalid job envelope: {describe(exc, whole='body')}") from None


OWNER_TAG_BITS = 32
_OWNER_MASK = (1 << OWNER_TAG_BITS) - 1


def _owner_tag(untagged: int, owner: str) -> int:
    digest = hashlib.sha256(owner.lower().encode() + b"\0" + untagged.to_bytes(16, "big"))
    return int.from_bytes(digest.digest()[: OWNER_TAG_BITS // 8], "big")


def new_job_id(owner: str | None = None) -> str:
    """A time-ordered UUID (version 7): its first 48 bits are the creation time in ms.

    The time lets ``get_result`` in a process that started later know where in the results
    stream to look for the job without scanning the whole retention window. With ``owner``
    (the subscription), the last 32 bits bind the id to it (``job_owned_by``), so an API can
    refuse another subscription's job id without storing who submitted what; 42 random bits
    per millisecond remain.
    """
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= (rand >> 68) << 64  # 12 random bits
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    if owner is not None:
        value &= ~_OWNER_MASK
        value |= _owner_tag(value, owner)
    return str(uuid.UUID(int=value))


def job_owned_by(job_id: str, owner: str) -> bool:
    """Whether ``job_id`` was made by ``new_job_id(owner)`` (case-insensitive owner).

    A binding, not a secret: ids are not forgeable into other jobs, so a caller holding
    another subscription's id learns nothing; a caller's chance that a foreign id carries one
    of its own subscriptions' tags is 2**-32 per subscription.
    """
    try:
        value = uuid.UUID(job_id).int
    except ValueError:
        return False
    untagged = value & ~_OWNER_MASK
    return value & _OWNER_MASK == _owner_tag(untagged, owner)


def job_id_time(job_id: str) -> float | None:
    """Creation time (epoch seconds) of a version-7 job id, or None for other ids."""
    try:
        parsed = uuid.UUID(job_id)
    except ValueError:
        return None
    if parsed.version != 7:
        return None
    return (parsed.int >> 80) / 1000.0


def job_attributes(envelope: JobEnvelope) -> dict[str, str | int]:
    """The job's identity as span attributes (the same on the submit and the process span)."""
    return {
        "itl.job.id": envelope.job_id,
        "itl.job.provider": envelope.provider_namespace,
        "itl.job.resource_type": envelope.resource_type,
        "itl.job.operation": envelope.operation,
        "itl.job.attempt": envelope.attempt,
        "messaging.system": "rabbitmq",
        "messaging.message.id": envelope.job_id,
    }
