"""Drift detection compares what the operator set, not what the server added."""

from __future__ import annotations

from workerpool_operator.diff import contains, first_difference


def test_server_added_fields_are_not_drift() -> None:
    desired = {"spec": {"replicas": 2, "template": {"ports": [{"containerPort": 8001}]}}}
    live = {
        "metadata": {"resourceVersion": "9"},
        "spec": {
            "replicas": 2,
            "progressDeadlineSeconds": 600,
            "template": {"ports": [{"containerPort": 8001, "protocol": "TCP"}]},
        },
    }
    assert contains(live, desired)


def test_changed_or_removed_values_are_drift() -> None:
    desired = {"spec": {"replicas": 2, "env": [{"name": "A", "value": "1"}]}}
    assert not contains({"spec": {"replicas": 3, "env": [{"name": "A", "value": "1"}]}}, desired)
    assert not contains({"spec": {"replicas": 2, "env": []}}, desired)
    assert not contains({"spec": {"replicas": 2}}, desired)
    assert not contains(None, desired)


def test_empty_maps_the_server_drops_are_not_drift() -> None:
    assert contains({"spec": {}}, {"spec": {"nodeSelector": {}, "tolerations": []}})


def test_read_only_mappings_like_kopf_bodies_are_compared_by_content() -> None:
    from types import MappingProxyType

    live = MappingProxyType({"spec": MappingProxyType({"replicas": 2, "ports": (1, 2)})})
    assert contains(live, {"spec": {"replicas": 2, "ports": [1, 2]}})
    assert first_difference(live, {"spec": {"replicas": 3}}) == "spec.replicas"
