"""The public names and signatures match the API reference (docs/reference/)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import itl_controlplane_sdk.workers as workers

REFERENCE = (
    Path(__file__).resolve().parents[3] / "docs" / "reference" / "worker-role-api-reference.md"
)
SECTION = re.compile(r"^### (\w+)", re.MULTILINE)
DEF = re.compile(r"(async\s+)?def\s+(\w+)\(\s*(.*?)\)\s*(?:->|:|$)", re.DOTALL)
CLASS_INIT = re.compile(
    r"class (\w+)(?:\([^)]*\))?:\s*def __init__\((.*?)\)\s*$", re.DOTALL | re.MULTILINE
)


def _parameters(text: str) -> list[str]:
    names = []
    depth = 0
    current = ""
    for char in text:
        depth += char in "[("
        depth -= char in "])"
        if char == "," and depth == 0:
            names.append(current)
            current = ""
        else:
            current += char
    names.append(current)
    cleaned = [re.split(r"[:=]", n)[0].strip() for n in names]
    return [n for n in cleaned if n and n not in ("self", "cls")]


def reference_signatures() -> dict[str, dict[str, tuple[bool, list[str]]]]:
    """{class: {method: (is_async, parameter names)}} from the reference's signature blocks.

    A signature block is the first python block under a "Constructor" or a method heading;
    examples further down are ignored.
    """
    text = REFERENCE.read_text()
    sections = SECTION.split(text)[1:]
    found: dict[str, dict[str, tuple[bool, list[str]]]] = {}
    for name, body in zip(sections[::2], sections[1::2], strict=True):
        if not hasattr(workers, name):
            continue
        methods = found.setdefault(name, {})
        for heading, block in re.findall(
            r"^#{4,5} (.+?)\n+```python\n(.*?)```", body, re.DOTALL | re.MULTILINE
        ):
            init = CLASS_INIT.search(block)
            if heading.strip() == "Constructor" and init:
                methods["__init__"] = (False, _parameters(init.group(2)))
                continue
            match = DEF.search(block)
            if match and match.group(2) in heading:
                methods[match.group(2)] = (bool(match.group(1)), _parameters(match.group(3)))
    return found


SIGNATURES = reference_signatures()
CASES = [
    (cls, method, spec) for cls, methods in SIGNATURES.items() for method, spec in methods.items()
]


def test_reference_parsed_every_class() -> None:
    assert set(SIGNATURES) >= {
        "WorkerRole",
        "ProviderWorker",
        "JobQueue",
        "JobResult",
        "WorkerRegistry",
        "OffloadingProviderRegistry",
        "SyncOffloadingProviderRegistry",
    }
    assert len(CASES) >= 35


@pytest.mark.parametrize(("cls", "method", "spec"), CASES, ids=[f"{c}.{m}" for c, m, _ in CASES])
def test_signature_matches_reference(cls: str, method: str, spec: tuple[bool, list[str]]) -> None:
    is_async, expected = spec
    target = getattr(getattr(workers, cls), method)
    signature = inspect.signature(target)
    positional = [
        p.name
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in ("self", "cls")
    ]
    assert positional[: len(expected)] == expected
    extra = positional[len(expected) :]
    assert all(signature.parameters[name].default is not inspect.Parameter.empty for name in extra)
    if method != "__init__":
        assert inspect.iscoroutinefunction(target) == is_async


def test_job_status_values() -> None:
    assert {s.name: s.value for s in workers.JobStatus} == {
        "PENDING": "pending",
        "PROCESSING": "processing",
        "COMPLETED": "completed",
        "FAILED": "failed",
        "CANCELLED": "cancelled",
    }


def test_defaults_of_the_reference() -> None:
    assert (
        inspect.signature(workers.WorkerRole.__init__).parameters["worker_type"].default
        == "generic"
    )
    assert (
        inspect.signature(workers.JobQueue.__init__).parameters["rabbitmq_url"].default
        == "amqp://guest:guest@localhost/"
    )
    assert inspect.signature(workers.JobQueue.submit_job).parameters["priority"].default == 5
    assert inspect.signature(workers.JobQueue.get_result).parameters["timeout"].default == 30.0
    assert (
        inspect.signature(workers.SyncOffloadingProviderRegistry.__init__)
        .parameters["default_timeout"]
        .default
        == 30.0
    )
