"""Does a live object already hold everything the operator wants? (drift detection)

Live objects may be Kopf bodies (read-only mappings), so any Mapping/Sequence counts.
The API server adds defaults, status and metadata to what was applied, so "equal" is the
wrong test; "every field we set has the value we set" is the right one. Empty maps and lists
we set count as satisfied by an absent field, because the server drops them.

Pure module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def first_difference(live: Any, desired: Any, path: str = "") -> str | None:
    """Path of the first field of ``desired`` that ``live`` lacks or holds differently.

    Lists must have the same length and match element by element (containers, env and
    ports are ordered lists in the objects the operator writes). None when nothing differs.
    """
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return path or "."
        for key, want in desired.items():
            here = f"{path}.{key}" if path else key
            if key not in live:
                if want in ({}, [], None):
                    continue
                return here
            found = first_difference(live[key], want, here)
            if found is not None:
                return found
        return None
    if isinstance(desired, list):
        if not _is_list(live) or len(live) != len(desired):
            return path
        for index, (have, want) in enumerate(zip(live, desired, strict=True)):
            found = first_difference(have, want, f"{path}[{index}]")
            if found is not None:
                return found
        return None
    return None if live == desired else path


def contains(live: Any, desired: Any) -> bool:
    """True when ``live`` holds every field of ``desired`` with the same value."""
    return first_difference(live, desired) is None


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)
