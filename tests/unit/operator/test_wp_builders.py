"""Builders: the children's shape, the env contract, ownership and Pod Security."""

from __future__ import annotations

from typing import Any

from itl_controlplane_sdk.contract.settings import WorkerSettings
from tests.unit.operator.wp_factories import UID, pool
from workerpool_operator import labels as names
from workerpool_operator.api import MANAGED_ENV_FIELDS
from workerpool_operator.builders import (
    build_children,
    build_deployment,
    build_pdb,
)
from workerpool_operator.builders.deployment import termination_grace_seconds

IMAGE = "registry.invalid/worker:1"


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def _env(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {var["name"]: var for var in _container(deployment)["env"]}


def test_children_are_pdb_then_deployment_all_owned_by_the_pool() -> None:
    children = build_children(pool(name="alpha"), default_image=IMAGE)
    # No Service: nothing routes traffic to workers, and a PodMonitor scrapes the pods.
    assert [c["kind"] for c in children] == ["PodDisruptionBudget", "Deployment"]
    for child in children:
        metadata = child["metadata"]
        assert metadata["name"] == "alpha"
        assert metadata["namespace"] == "team-a"
        assert metadata["ownerReferences"] == [
            {
                "apiVersion": "controlplane.itlusions.com/v1alpha1",
                "kind": "WorkerPool",
                "name": "alpha",
                "uid": UID,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert metadata["labels"][names.LABEL_MANAGED_BY] == "workerpool-operator"
        assert metadata["labels"][names.LABEL_POOL] == "alpha"


TLS_BROKER = {
    "secretRef": {"name": "rabbitmq"},
    "tls": {"secretName": "broker-tls", "caKey": "ca.pem", "clientCertificate": True},
}


def test_env_names_are_exactly_the_worker_settings_contract() -> None:
    env = _env(
        build_deployment(
            pool(providers=["ITL.Compute/VM"], rabbitmq=TLS_BROKER), default_image=IMAGE
        )
    )
    expected = {WorkerSettings.env_name(field) for field in MANAGED_ENV_FIELDS}
    assert set(env) == expected
    # Every name the worker reads must parse back into WorkerSettings.
    literal = {name: var["value"] for name, var in env.items() if "value" in var}
    settings = WorkerSettings.model_validate(
        {**literal, "WORKER_ID": "workers-abc", "RABBITMQ_URL": "amqp://x"}
    )
    assert settings.pool_name == "team-a/workers"  # namespace keeps same-named pools apart
    assert settings.job_bindings == ["provider.ITL.Compute.VM.*"]
    tls = settings.broker_tls
    assert tls is not None
    assert (tls.ca_file, tls.cert_file, tls.key_file) == (
        "/etc/itl/broker-tls/ca.crt",
        "/etc/itl/broker-tls/tls.crt",
        "/etc/itl/broker-tls/tls.key",
    )


def test_broker_tls_secret_is_mounted_read_only_only_when_set() -> None:
    plain = build_deployment(pool(), default_image=IMAGE)
    assert "RABBITMQ_TLS_CA_FILE" not in _env(plain)
    assert [v["name"] for v in plain["spec"]["template"]["spec"]["volumes"]] == ["tmp"]

    ca_only = {"secretRef": {"name": "rabbitmq"}, "tls": {"secretName": "broker-ca"}}
    deployment = build_deployment(pool(rabbitmq=ca_only), default_image=IMAGE)
    env = _env(deployment)
    assert env["RABBITMQ_TLS_CA_FILE"]["value"] == "/etc/itl/broker-tls/ca.crt"
    assert "RABBITMQ_TLS_CERT_FILE" not in env
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["broker-tls"]["secret"] == {
        "secretName": "broker-ca",
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
        "defaultMode": 0o440,
    }
    mounts = _container(deployment)["volumeMounts"]
    assert {"name": "broker-tls", "mountPath": "/etc/itl/broker-tls", "readOnly": True} in mounts


def test_worker_id_comes_from_the_pod_name_and_the_url_from_the_secret() -> None:
    env = _env(
        build_deployment(
            pool(rabbitmq={"secretRef": {"name": "broker", "key": "amqp-url"}}),
            default_image=IMAGE,
        )
    )
    assert env["WORKER_ID"]["valueFrom"] == {
        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}
    }
    assert env["RABBITMQ_URL"]["valueFrom"] == {
        "secretKeyRef": {"name": "broker", "key": "amqp-url"}
    }
    assert "value" not in env["RABBITMQ_URL"]


def test_spec_values_reach_the_worker() -> None:
    env = _env(
        build_deployment(
            pool(maxConcurrentJobs=4, jobTimeout=120, logLevel="DEBUG"), default_image=IMAGE
        )
    )
    assert env["MAX_CONCURRENT_JOBS"]["value"] == "4"
    assert env["JOB_TIMEOUT"]["value"] == "120"
    assert env["DRAIN_TIMEOUT"]["value"] == "120"
    assert env["LOG_LEVEL"]["value"] == "DEBUG"
    assert env["HEALTH_CHECK_PORT"]["value"] == "8001"
    assert env["JOB_QUEUE"]["value"] == "provider.jobs"
    assert "JOB_BINDINGS" not in env


def test_user_env_comes_after_the_managed_variables() -> None:
    deployment = build_deployment(
        pool(env=[{"name": "EXTRA", "value": "1"}, {"name": "TOKEN", "valueFrom": {"x": 1}}]),
        default_image=IMAGE,
    )
    names = [var["name"] for var in _container(deployment)["env"]]
    assert names[-2:] == ["EXTRA", "TOKEN"]
    assert _container(deployment)["env"][-2] == {"name": "EXTRA", "value": "1"}


def test_grace_period_covers_the_job_timeout_plus_a_margin() -> None:
    spec = pool(jobTimeout=600).spec
    deployment = build_deployment(pool(jobTimeout=600), default_image=IMAGE)
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace == termination_grace_seconds(spec) == 630


def test_pod_meets_the_restricted_pod_security_standard() -> None:
    pod = build_deployment(pool(), default_image=IMAGE)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsUser"] != 0
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["runAsNonRoot"] is True
    assert all(not volume.get("hostPath") for volume in pod["volumes"])
    assert pod["automountServiceAccountToken"] is False


def test_probes_use_health_on_the_named_port() -> None:
    container = _container(build_deployment(pool(), default_image=IMAGE))
    assert container["ports"] == [{"name": "health", "containerPort": 8001, "protocol": "TCP"}]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "health"}


def test_image_defaults_to_the_operator_setting_and_spec_overrides_it() -> None:
    assert _container(build_deployment(pool(), default_image=IMAGE))["image"] == IMAGE
    custom = build_deployment(pool(image="mine:2"), default_image=IMAGE)
    assert _container(custom)["image"] == "mine:2"


def test_replicas_follow_the_spec() -> None:
    assert build_deployment(pool(replicaCount=3), default_image=IMAGE)["spec"]["replicas"] == 3
    below_min = pool(replicaCount=1, autoscaling={"enabled": True, "minReplicas": 2})
    assert build_deployment(below_min, default_image=IMAGE)["spec"]["replicas"] == 2
    # Above maxReplicas the autoscaler lowers replicas drain-aware; the builder never cuts.
    above_max = pool(replicaCount=30, autoscaling={"enabled": True, "maxReplicas": 4})
    assert build_deployment(above_max, default_image=IMAGE)["spec"]["replicas"] == 30


def test_rollouts_never_reduce_ready_capacity() -> None:
    strategy = build_deployment(pool(), default_image=IMAGE)["spec"]["strategy"]
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0


def test_pod_level_settings_pass_through() -> None:
    spec: dict[str, Any] = {
        "nodeSelector": {"pool": "workers"},
        "tolerations": [{"key": "dedicated", "operator": "Exists"}],
        "affinity": {"nodeAffinity": {}},
        "serviceAccountName": "worker-sa",
        "imagePullSecrets": [{"name": "pull"}],
        "priorityClassName": "high",
        "podLabels": {"team": "a"},
        "podAnnotations": {"note": "x"},
        "resources": {"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}},
    }
    template = build_deployment(pool(**spec), default_image=IMAGE)["spec"]["template"]
    pod = template["spec"]
    assert pod["nodeSelector"] == {"pool": "workers"}
    assert pod["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]
    assert pod["affinity"] == {"nodeAffinity": {}}
    assert pod["serviceAccountName"] == "worker-sa"
    assert "automountServiceAccountToken" not in pod
    assert pod["imagePullSecrets"] == [{"name": "pull"}]
    assert pod["priorityClassName"] == "high"
    assert template["metadata"]["labels"]["team"] == "a"
    assert template["metadata"]["annotations"]["note"] == "x"
    assert pod["containers"][0]["resources"] == spec["resources"]


def test_pod_labels_cannot_override_the_selector() -> None:
    deployment = build_deployment(pool(name="p"), default_image=IMAGE)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector == names.selector_labels("p")
    assert selector.items() <= labels.items()


def test_pdb_selects_the_pool_pods() -> None:
    pdb = build_pdb(pool(name="p"))
    assert pdb["spec"]["selector"] == {"matchLabels": names.selector_labels("p")}
    assert pdb["spec"]["maxUnavailable"] == 1


def test_selector_string_is_what_the_scale_subresource_expects() -> None:
    assert names.selector_string("p") == (
        "app.kubernetes.io/name=itl-worker,controlplane.itlusions.com/workerpool=p"
    )


def test_otel_variables_in_spec_env_reach_the_worker_container() -> None:
    """Tracing in a pool is spec.env alone: the worker reads the standard OTEL_* variables."""
    otel = [
        {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel-collector:4318"},
        {"name": "OTEL_RESOURCE_ATTRIBUTES", "value": "k8s.namespace.name=team-a"},
    ]
    env = _env(build_deployment(pool(env=otel), default_image=IMAGE))
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == otel[0]
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == otel[1]


def test_a_replicated_pool_tells_its_workers_the_queue_type() -> None:
    replicated = pool(rabbitmq={"secretRef": {"name": "broker"}, "queueType": "replicated"})
    env = _env(build_deployment(replicated, default_image=IMAGE))
    assert env["QUEUE_TYPE"] == {"name": "QUEUE_TYPE", "value": "replicated"}
    assert _env(build_deployment(pool(), default_image=IMAGE))["QUEUE_TYPE"]["value"] == "classic"
