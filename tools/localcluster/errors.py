"""Exceptions raised by the local control-plane harness.

They are separate so callers (the pytest plugin, the CLI) can tell "the environment cannot give us a
cluster" (skip locally, fail in CI) apart from programming errors, which must propagate unchanged.
"""

from __future__ import annotations


class ClusterUnavailable(RuntimeError):
    """No control plane: binaries missing, a component failed, or a guard refused."""


class ComponentFailed(ClusterUnavailable):
    """A control-plane process exited or never became ready; the message carries its log tail."""
