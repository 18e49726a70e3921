"""One wording for pydantic validation errors, wherever a user or a dead letter reads them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import ValidationError


def describe(
    exc: ValidationError, *, whole: str = "value", names: Mapping[str, str] | None = None
) -> str:
    """``field.path: message; ...``, naming ``whole`` when the error is about the entire input.

    ``names`` renames a path's first part (a settings field shown as its flag or variable).
    """
    return "; ".join(
        f"{_path(err['loc'], names or {}) or whole}: {err['msg']}" for err in exc.errors()
    )


def _path(loc: Sequence[int | str], names: Mapping[str, str]) -> str:
    parts = [str(part) for part in loc]
    if parts:
        parts[0] = names.get(parts[0], parts[0])
    return ".".join(parts)
