"""The Helm chart deploy/helm/oxidask, rendered by a real helm (.ci/setup-helm.sh installs it)
and validated against the Kubernetes JSON schemas (kubernetes-validate, strict: unknown
fields are errors). No Kubernetes cluster runs here: instead the rendered containers' own
commands, arguments, environment and mounted Secrets are run as local processes (the pod
IP and the scheduler Service's DNS name become 127.0.0.1), and a client computes on them.
Without helm or kubernetes-validate these tests fail, they never skip."""

import base64
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
import kubernetes_validate

from oxidask.distributed import Client, Security

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "deploy" / "helm" / "oxidask"
# The oldest and the newest Kubernetes minor versions the chart is checked against.
KUBERNETES_VERSIONS = ["1.29.0", "1.37.0"]


@pytest.fixture(scope="module")
def helm():
    out = subprocess.run(
        ["bash", str(ROOT / ".ci" / "setup-helm.sh")], check=True, capture_output=True, text=True
    )
    return out.stdout.strip().splitlines()[-1]


def render(helm, tmp_path, values=None, release="rel"):
    """``helm template`` with ``values``: the list of rendered objects."""
    path = tmp_path / f"values-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(values or {}))
    out = subprocess.run(
        [helm, "template", release, str(CHART), "--namespace", "science", "-f", str(path)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def validate(objects):
    for obj in objects:
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)


def one(objects, kind, component=None):
    found = [
        o
        for o in objects
        if o["kind"] == kind
        and (component is None or o["metadata"]["labels"].get("app.kubernetes.io/component") == component)
    ]
    assert len(found) == 1, [(o["kind"], o["metadata"]["name"]) for o in objects]
    return found[0]


def container(deployment):
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


def test_chart_lints(helm):
    out = subprocess.run([helm, "lint", "--strict", str(CHART)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_default_values_render_and_validate(helm, tmp_path):
    objects = render(helm, tmp_path)
    validate(objects)
    assert sorted(o["kind"] for o in objects) == ["Deployment", "Deployment", "Service"]
    service = one(objects, "Service")
    assert service["metadata"]["name"] == "rel-oxidask-scheduler"
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"comm": 8786, "dashboard": 8787}
    scheduler = one(objects, "Deployment", "scheduler")
    assert service["spec"]["selector"] == scheduler["spec"]["template"]["metadata"]["labels"]
    ports = {p["name"]: p["containerPort"] for p in container(scheduler)["ports"]}
    assert ports == {"comm": 8786, "dashboard": 8787}
    worker = one(objects, "Deployment", "worker")
    assert worker["spec"]["replicas"] == 3
    env = {e["name"]: e for e in container(worker)["env"]}
    assert env["OXIDASK_SCHEDULER_ADDRESS"]["value"] == "tcp://rel-oxidask-scheduler:8786"
    assert "resources" not in container(worker)
    assert not any(a.startswith("--tls") for a in container(worker)["args"] + container(scheduler)["args"])


def test_worker_replicas_and_resources_follow_values(helm, tmp_path):
    resources = {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"cpu": "2", "memory": "8Gi"}}
    objects = render(
        helm,
        tmp_path,
        {
            "worker": {
                "replicas": 7,
                "resources": resources,
                "nthreads": 2,
                "memoryLimit": "7GiB",
                "nworkers": 2,
                "extraArgs": ["--resources", "GPU=1"],
                "env": [{"name": "EXTRA", "value": "1"}],
            },
            "scheduler": {"serviceType": "LoadBalancer", "resources": {"limits": {"memory": "2Gi"}}},
        },
    )
    validate(objects)
    worker = one(objects, "Deployment", "worker")
    c = container(worker)
    assert worker["spec"]["replicas"] == 7
    assert c["resources"] == resources
    args = c["args"]
    for flag, value in [("--nthreads", "2"), ("--memory-limit", "7GiB"), ("--nworkers", "2"), ("--resources", "GPU=1")]:
        assert args[args.index(flag) + 1] == value
    assert {e["name"] for e in c["env"]} >= {"POD_IP", "OXIDASK_SCHEDULER_ADDRESS", "EXTRA"}
    assert one(objects, "Service")["spec"]["type"] == "LoadBalancer"
    assert container(one(objects, "Deployment", "scheduler"))["resources"] == {"limits": {"memory": "2Gi"}}


def test_autoscaling_hook_renders_a_valid_hpa_on_the_worker_deployment(helm, tmp_path):
    objects = render(
        helm,
        tmp_path,
        {"worker": {"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 20,
                                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}}}}},
    )
    validate(objects)
    hpa = one(objects, "HorizontalPodAutoscaler")
    worker = one(objects, "Deployment", "worker")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": worker["metadata"]["name"]}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 20)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 80
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert "replicas" not in worker["spec"]  # the autoscaler owns the count


def test_tls_without_certificates_is_a_clear_error(helm, tmp_path):
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump({"tls": {"enabled": True}}))
    out = subprocess.run([helm, "template", "rel", str(CHART), "-f", str(path)], capture_output=True, text=True)
    assert out.returncode != 0
    assert "tls.enabled needs tls.existingSecret, or tls.ca, tls.cert and tls.key" in out.stderr


@pytest.mark.parametrize(
    "values, message",
    [
        ({"tsl": {"enabled": True}}, "additional properties 'tsl' not allowed"),
        ({"worker": {"replicas": "many"}}, "at '/worker/replicas': got string, want integer"),
        ({"scheduler": {"serviceType": "Ingress"}}, "/scheduler/serviceType"),
    ],
)
def test_values_schema_names_a_mistyped_value(helm, tmp_path, values, message):
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    out = subprocess.run([helm, "template", "rel", str(CHART), "-f", str(path)], capture_output=True, text=True)
    assert out.returncode != 0
    assert message in out.stderr, out.stderr


def test_existing_secrets_are_referenced_not_created(helm, tmp_path):
    objects = render(
        helm,
        tmp_path,
        {"tls": {"enabled": True, "existingSecret": "my-tls"}, "auth": {"enabled": True, "existingSecret": "my-token"}},
    )
    validate(objects)
    assert not [o for o in objects if o["kind"] == "Secret"]
    for component in ("scheduler", "worker"):
        d = one(objects, "Deployment", component)
        (volume,) = d["spec"]["template"]["spec"]["volumes"]
        assert volume["secret"]["secretName"] == "my-tls"
        env = {e["name"]: e for e in container(d)["env"]}
        assert env["OXIDASK_DISTRIBUTED__COMM__AUTH__TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "my-token", "key": "token"}


# --- the rendered pods, run as local processes ---------------------------------------------


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pod_process(c, secrets, service, tmp_path, name):
    """Starts a rendered container as a local process: ``python`` is this Python, env values
    come from the rendered Secrets, the pod IP and the Service's name are 127.0.0.1, and
    ``$(VAR)`` in arguments expands as Kubernetes does."""
    env = {}
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"].replace(service, "127.0.0.1")
        elif "secretKeyRef" in e["valueFrom"]:
            ref = e["valueFrom"]["secretKeyRef"]
            env[e["name"]] = base64.b64decode(secrets[ref["name"]]["data"][ref["key"]]).decode()
        else:
            assert e["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
            env[e["name"]] = "127.0.0.1"
    args = [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a) for a in c["args"]]
    command = [sys.executable if x == "python" else x for x in c["command"]]
    log = open(tmp_path / f"{name}.log", "w")
    proc = subprocess.Popen(
        command + args,
        env=dict(os.environ, OXIDASK_WORKER_SYS_PATH=os.pathsep.join(sys.path), **env),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return proc, tmp_path / f"{name}.log"


@pytest.mark.parametrize("secure", [False, True], ids=["plain", "tls-and-token"])
def test_rendered_pods_run_and_compute(helm, tmp_path, secure):
    port, dashboard, worker_dashboard = _free_port(), _free_port(), _free_port()
    values = {
        "scheduler": {"servicePort": port, "dashboardPort": dashboard},
        "worker": {"portDashboard": worker_dashboard, "nthreads": 1, "memoryLimit": "1GiB"},
    }
    security = None
    if secure:
        security = Security.temporary(token="chart-token")
        values["tls"] = {
            "enabled": True,
            "ca": security.tls_ca_file,
            "cert": security.tls_scheduler_cert,
            "key": security.tls_scheduler_key,
            "mountPath": str(tmp_path / "tls"),
        }
        values["auth"] = {"enabled": True, "token": "chart-token"}
    objects = render(helm, tmp_path, values)
    validate(objects)
    secrets = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Secret"}
    assert len(secrets) == (2 if secure else 0)
    scheduler, worker = one(objects, "Deployment", "scheduler"), one(objects, "Deployment", "worker")
    if secure:
        # The Secret volume, as the kubelet would mount it.
        (volume,) = worker["spec"]["template"]["spec"]["volumes"]
        mount = container(worker)["volumeMounts"][0]
        assert volume["secret"]["secretName"] in secrets
        os.makedirs(mount["mountPath"])
        for key, text in secrets[volume["secret"]["secretName"]]["data"].items():
            (Path(mount["mountPath"]) / key).write_bytes(base64.b64decode(text))
    service = one(objects, "Service")["metadata"]["name"]
    procs = []
    try:
        procs.append(_pod_process(container(scheduler), secrets, service, tmp_path, "scheduler"))
        procs.append(_pod_process(container(worker), secrets, service, tmp_path, "worker"))
        scheme = "tls" if secure else "tcp"
        with Client(f"{scheme}://127.0.0.1:{port}", security=security, timeout=30) as client:
            client.wait_for_workers(1, timeout=60)
            (info,) = client.scheduler_info()["workers"].values()
            assert info["nthreads"] == 1
            futures = client.map(lambda x: 3 * x - 1, range(100))
            assert client.submit(sum, futures).result() == sum(3 * x - 1 for x in range(100))
        if secure:
            with pytest.raises(Exception):
                Client(f"tcp://127.0.0.1:{port}", timeout=2)  # --require-encryption
    finally:
        for proc, _ in procs:
            proc.terminate()
        for proc, _ in procs:
            proc.wait(30)
    logs = {name: path.read_text() for name, (_, path) in zip(["scheduler", "worker"], procs)}
    assert f"dashboard at http://" in logs["scheduler"] and f":{dashboard}/" in logs["scheduler"], logs
    assert f"metrics at http://127.0.0.1:{worker_dashboard}/metrics" in logs["worker"], logs
