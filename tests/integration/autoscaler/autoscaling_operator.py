"""The operator process with the autoscaler loaded, and the pool's broker Secret.

``AutoscalingOperator`` runs ``run_autoscaling_operator.py`` (``python -m
workerpool_operator`` plus the autoscaler's handlers) the way the operator's own tests run
the operator.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "operator"))

from wp_operator_process import REPO, OperatorProcess  # noqa: E402

from localcluster import ApiError, Cluster, wait_until  # noqa: E402


class AutoscalingOperator(OperatorProcess):
    """``OperatorProcess`` running this launcher instead of ``-m workerpool_operator``."""

    def start(self, timeout: float = 60) -> None:
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"\n===== operator start #{self.starts} =====\n".encode())
        log.flush()
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "run_autoscaling_operator.py")],
            env=self._env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        log.close()
        wait_until(self._alive, timeout=timeout, what="the operator's liveness endpoint")


def put_secret(cluster: Cluster, namespace: str, url: str, name: str = "rabbitmq") -> None:
    """Create or replace the pool's broker Secret."""
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "stringData": {"url": url},
    }
    try:
        cluster.api.post(f"/api/v1/namespaces/{namespace}/secrets", body)
    except ApiError:
        cluster.api.request("PUT", f"/api/v1/namespaces/{namespace}/secrets/{name}", body)
