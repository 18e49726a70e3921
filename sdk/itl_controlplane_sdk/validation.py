"""One wording for pydantic validation errors, wherever a user or a dead letter reads them."""

from __future__ import annotations

from pydantic import ValidationError


def describe(exc: ValidationError, *, whole: str = "value") -> str:
    """``field.path: message; ...``, naming ``whole`` when the error is about the entire input."""
    return "; ".join(
        f"{'.'.join(str(part) for part in err['loc']) or whole}: {err['msg']}"
        for err in exc.errors()
    )
