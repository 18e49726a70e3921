"""Launcher: ``python -m workerpool_operator`` with the autoscaler's Kopf handlers loaded.

Until ``workerpool_operator.handlers`` imports ``workerpool_operator.autoscaler.handlers``
itself, importing it here first is what registers the autoscaler in the operator process.
"""

from __future__ import annotations

import workerpool_operator.autoscaler.handlers  # noqa: F401  (registers the handlers)
from workerpool_operator.__main__ import main

if __name__ == "__main__":
    raise SystemExit(main())
