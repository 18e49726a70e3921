"""The autoscaler runtime: everything between ``scaling.decide`` and the outside world.

``policy`` turns a WorkerPool into a ``scaling.ScalingPolicy`` (pure). The poll loop, the
broker adapter and the Kubernetes writes live in the sibling modules and are the only
parts of the autoscaler that do I/O.
"""
