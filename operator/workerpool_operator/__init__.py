"""The WorkerPool operator: reconciles WorkerPool resources into worker Deployments.

Layers, outermost first: ``handlers`` (thin Kopf layer) -> ``reconcile`` -> ``builders``
(pure dicts) and ``kube`` (Kubernetes adapter) -> the pure core (``api``, ``conditions``,
``status``, ``scaling``). Not a library: the public surface is the CRD and the CLI
``python -m workerpool_operator``.
"""

__version__ = "0.1.0"
