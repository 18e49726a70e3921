"""The pure core stays pure: importing it loads no Kopf, Kubernetes client or broker client.

Run in a fresh interpreter, because this test session has imported everything already.
"""

from __future__ import annotations

import subprocess
import sys

PURE = [
    "workerpool_operator.api",
    "workerpool_operator.builders",
    "workerpool_operator.conditions",
    "workerpool_operator.crd",
    "workerpool_operator.diff",
    "workerpool_operator.docs",
    "workerpool_operator.rbac",
    "workerpool_operator.status",
]
FORBIDDEN = ["kopf", "kubernetes_asyncio", "aio_pika", "aiormq", "aiohttp"]


def test_pure_modules_import_no_io_libraries() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {PURE!r}: importlib.import_module(name)\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({FORBIDDEN!r})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stdout
