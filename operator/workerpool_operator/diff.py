"""Does a live object already hold everything the operator wants? (drift detection)

The API server adds defaults, status and metadata to what was applied, so "equal" is the
wrong test; "every field we set has the value we set" is the right one. Empty maps and lists
we set count as satisfied by an absent field, because the server drops them.

Pure module.
"""

from __future__ import annotations

from typing import Any


def contains(live: Any, desired: Any) -> bool:
    """True when ``live`` holds every field of ``desired`` with the same value.

    Lists must have the same length and match element by element (containers, env and
    ports are ordered lists in the objects the operator writes).
    """
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return False
        for key, want in desired.items():
            if key not in live:
                if want in ({}, [], None):
                    continue
                return False
            if not contains(live[key], want):
                return False
        return True
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return False
        return all(contains(have, want) for have, want in zip(live, desired, strict=True))
    return bool(live == desired)
