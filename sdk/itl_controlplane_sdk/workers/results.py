"""Job states and the result record that travels back from a worker."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any


class JobStatus(str, Enum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass
class JobResult:
    """Outcome of one job. ``timestamp`` defaults to the time the result was made (UTC)."""

    job_id: str
    status: JobStatus
    result: dict[str, Any] | None = None
    error: str | None = None
    timestamp: datetime = None  # type: ignore[assignment]  # filled in __post_init__

    def __post_init__(self) -> None:
        self.status = JobStatus(self.status)
        if self.timestamp is None:
            self.timestamp = datetime.now(UTC)

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "status": self.status.value,
            "result": self.result,
            "error": self.error,
            "timestamp": self.timestamp.isoformat(),
        }

    def to_json(self) -> bytes:
        """The record's body as every writer stores it: compact JSON, no spaces to store."""
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobResult:
        timestamp = data.get("timestamp")
        return cls(
            job_id=str(data["job_id"]),
            status=JobStatus(data["status"]),
            result=data.get("result"),
            error=data.get("error"),
            timestamp=datetime.fromisoformat(timestamp) if timestamp else None,  # type: ignore[arg-type]
        )
