"""KubeCluster's Kubernetes objects, without a Kubernetes cluster (none runs here): the pod and
Service specs validate strictly against the Kubernetes JSON schemas and pass through the
official client's models unchanged (what create_namespaced_pod would send); a configuration
that points at nothing fails with a clear error from the real client. Creating pods on a real
cluster is NOT exercised."""

import pytest
import kubernetes_validate
from kubernetes import client

from oxidask.distributed import Cluster
from oxidask.distributed.kubernetes import KubeCluster, scheduler_pod, scheduler_service, worker_pod

VERSIONS = ["1.29.0", "1.37.0"]


def check(obj, model):
    for version in VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)
    sent = client.ApiClient().sanitize_for_serialization(model.from_dict(obj))
    assert sent == obj


def test_scheduler_pod_and_service_validate_and_match():
    pod = scheduler_pod("demo", "registry.example/oxidask:1", resources={"limits": {"memory": "2Gi"}}, env={"A": 1})
    svc = scheduler_service("demo", service_type="LoadBalancer")
    check(pod, client.V1Pod)
    check(svc, client.V1Service)
    assert svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    ports = {p["name"]: p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]}
    assert ports == {"comm": 8786, "dashboard": 8787}
    assert {p["targetPort"] for p in svc["spec"]["ports"]} == set(ports)
    assert pod["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]


def test_worker_pod_validates_and_follows_arguments():
    resources = {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"cpu": "2", "memory": "8Gi"}}
    pod = worker_pod(
        "demo", "demo-worker-1", "img:1", "tcp://demo-scheduler.science:8786",
        resources=resources, env=[{"name": "B", "value": "2"}], worker_args=["--nthreads", 2],
    )
    check(pod, client.V1Pod)
    (c,) = pod["spec"]["containers"]
    assert c["resources"] == resources
    assert c["command"] == ["python", "-m", "oxidask", "worker"]
    assert c["args"][-2:] == ["--nthreads", "2"]
    env = {e["name"]: e for e in c["env"]}
    assert env["OXIDASK_SCHEDULER_ADDRESS"]["value"] == "tcp://demo-scheduler.science:8786"
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert pod["metadata"]["labels"]["oxidask.io/cluster"] == "demo"


def test_an_unreachable_api_is_a_clear_error(tmp_path, monkeypatch):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    config = tmp_path / "kubeconfig"
    config.write_text(
        f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "http://127.0.0.1:{port}"}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u, namespace: science}}}}]
current-context: x
"""
    )
    monkeypatch.setenv("KUBECONFIG", str(config))
    with pytest.raises(ConnectionError, match=rf"cannot reach the Kubernetes API at http://127\.0\.0\.1:{port}"):
        KubeCluster(name="demo", n_workers=1, resource_timeout=5)


def test_no_configuration_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(RuntimeError, match="no usable Kubernetes configuration"):
        KubeCluster(name="demo")


def test_bad_names_are_refused_before_any_call():
    assert issubclass(KubeCluster, Cluster)
    with pytest.raises(ValueError, match="DNS label"):
        KubeCluster(name="Not_A_Label")
    with pytest.raises(ValueError, match="scheduler_service_type"):
        KubeCluster(name="ok", scheduler_service_type="Ingress")
