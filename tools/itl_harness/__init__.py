"""Harness shared by the tests, the benchmarks and the demos (``tools/pyproject.toml``).

``operator_process`` runs the operator as a real process against a cluster and seeds a pool's
broker Secret; ``jobs`` declares pool queues and publishes demo jobs. Benchmarks import these,
never the test suite's own helpers. The Kubernetes control plane itself is ``localcluster``.
"""
