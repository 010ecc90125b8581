"""``KubeCluster``: a scheduler pod and Service, and worker pods, made through the Kubernetes API.

The objects are plain dicts in the API's own shape, made by the pure functions
``scheduler_pod``, ``scheduler_service`` and ``worker_pod`` (tested against the Kubernetes
JSON schemas); ``_KubernetesApi`` is the only code that talks to a cluster, through the
official ``kubernetes`` Python client (``pip install kubernetes``; imported only when a
``KubeCluster`` starts). For a long-lived cluster managed by ``helm``, see the chart in
``deploy/helm/oxidask`` instead.

Not exercised against a real Kubernetes cluster: none runs where oxidask is tested. The pod
and Service specs are validated against the schemas and pass through the client's models
unchanged; connecting with a configuration that points nowhere is tested to fail clearly.

# Invariants
- Every object a ``KubeCluster`` makes carries the label ``oxidask.io/cluster: <name>``;
  ``close()`` deletes by that label, so it also removes pods a failed start left behind.
"""

import os
import re
import time
import uuid

from oxidask.distributed.deploy.cluster import Cluster
from oxidask.utils import parse_bytes

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
CLUSTER_LABEL = "oxidask.io/cluster"


def _labels(cluster, component):
    return {
        "app.kubernetes.io/name": "oxidask",
        "app.kubernetes.io/component": component,
        CLUSTER_LABEL: cluster,
    }


def _env(env):
    """``{"NAME": "value"}`` or a list of Kubernetes env entries → a list of entries."""
    if not env:
        return []
    if isinstance(env, dict):
        return [{"name": str(k), "value": str(v)} for k, v in env.items()]
    return list(env)


def _container(name, image, command, args, env, resources, ports):
    c = {"name": name, "image": image, "command": list(command), "args": args, "env": env, "ports": ports}
    if resources:
        c["resources"] = resources
    return c


def scheduler_pod(cluster, image, port=8786, dashboard_port=8787, resources=None, env=None):
    """The scheduler's pod for cluster ``cluster`` (a dict in the Kubernetes API's shape).

    >>> scheduler_pod("demo", "oxidask/oxidask:0.1.0")["metadata"]["name"]
    'demo-scheduler'
    """
    args = ["--host", "0.0.0.0", "--port", str(port), "--dashboard-address", f":{dashboard_port}"]
    ports = [
        {"name": "comm", "containerPort": int(port), "protocol": "TCP"},
        {"name": "dashboard", "containerPort": int(dashboard_port), "protocol": "TCP"},
    ]
    c = _container(
        "scheduler", image, ["python", "-m", "oxidask", "scheduler"], args, _env(env), resources, ports
    )
    c["readinessProbe"] = {"httpGet": {"path": "/health", "port": "dashboard"}, "periodSeconds": 2}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{cluster}-scheduler", "labels": _labels(cluster, "scheduler")},
        "spec": {"restartPolicy": "Never", "containers": [c]},
    }


def scheduler_service(cluster, port=8786, dashboard_port=8787, service_type="ClusterIP"):
    """The Service in front of the scheduler's pod (``<cluster>-scheduler``: 8786 and 8787).

    >>> scheduler_service("demo")["spec"]["ports"][0]["port"]
    8786
    """
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"{cluster}-scheduler", "labels": _labels(cluster, "scheduler")},
        "spec": {
            "type": service_type,
            "selector": _labels(cluster, "scheduler"),
            "ports": [
                {"name": "comm", "port": int(port), "targetPort": "comm", "protocol": "TCP"},
                {"name": "dashboard", "port": int(dashboard_port), "targetPort": "dashboard", "protocol": "TCP"},
            ],
        },
    }


def worker_pod(cluster, name, image, scheduler_address, resources=None, env=None, worker_args=()):
    """A worker's pod: ``python -m oxidask worker`` connecting to ``scheduler_address`` (given
    as ``OXIDASK_SCHEDULER_ADDRESS``), its data port on the pod's IP. Threads and memory
    limit follow the container's CPU quota and memory limit (``resources["limits"]``)
    unless ``worker_args`` says otherwise.

    >>> pod = worker_pod("demo", "demo-worker-0", "oxidask/oxidask:0.1.0", "tcp://demo-scheduler:8786")
    >>> pod["spec"]["containers"][0]["env"][1]["value"]
    'tcp://demo-scheduler:8786'
    """
    env = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "OXIDASK_SCHEDULER_ADDRESS", "value": scheduler_address},
    ] + _env(env)
    args = ["--host", "$(POD_IP)", "--name", name, "--dashboard-address", "$(POD_IP):8790"]
    args += [str(a) for a in worker_args]
    ports = [{"name": "dashboard", "containerPort": 8790, "protocol": "TCP"}]
    c = _container("worker", image, ["python", "-m", "oxidask", "worker"], args, env, resources, ports)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": _labels(cluster, "worker")},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 30, "containers": [c]},
    }


class _KubernetesApi:
    """The calls a ``KubeCluster`` makes, through the official client (CoreV1Api)."""

    def __init__(self, namespace=None, config_file=None, context=None):
        try:
            from kubernetes import client, config
        except ImportError as e:
            raise ImportError(
                "KubeCluster needs the Kubernetes Python client: pip install kubernetes"
            ) from e
        self._client = client
        # The client reads KUBECONFIG once, when imported; read it now.
        config_file = config_file or os.environ.get("KUBECONFIG") or None
        try:
            try:
                config.load_incluster_config()
                default_ns = open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read().strip()
            except config.ConfigException:
                config.load_kube_config(config_file=config_file, context=context)
                _, active = config.list_kube_config_contexts(config_file=config_file)
                default_ns = (active or {}).get("context", {}).get("namespace", "default")
        except (config.ConfigException, OSError) as e:
            raise RuntimeError(
                f"KubeCluster: no usable Kubernetes configuration ({e}). Run inside a pod with a "
                "service account, or point KUBECONFIG (or config_file=) at a kubeconfig."
            ) from e
        self.namespace = namespace or default_ns
        self.core = client.CoreV1Api()
        self.host = self.core.api_client.configuration.host

    def _call(self, what, fn, *args, **kwargs):
        from kubernetes.client.exceptions import ApiException

        try:
            return fn(*args, **kwargs)
        except ApiException as e:
            raise RuntimeError(
                f"KubeCluster: the Kubernetes API refused to {what} in namespace "
                f"{self.namespace!r}: {e.status} {e.reason}: {e.body}"
            ) from e
        except Exception as e:  # urllib3's connection errors
            if "Connection" in type(e).__name__ or "MaxRetry" in type(e).__name__:
                raise ConnectionError(
                    f"KubeCluster: cannot reach the Kubernetes API at {self.host} to {what}: {e}"
                ) from e
            raise

    def create_pod(self, pod):
        body = self._client.V1Pod.from_dict(pod)
        self._call("create a pod", self.core.create_namespaced_pod, self.namespace, body)

    def create_service(self, service):
        body = self._client.V1Service.from_dict(service)
        self._call("create a service", self.core.create_namespaced_service, self.namespace, body)

    def pods(self, selector):
        return self._call(
            "list pods", self.core.list_namespaced_pod, self.namespace, label_selector=selector
        ).items

    def service(self, name):
        return self._call("read a service", self.core.read_namespaced_service, name, self.namespace)

    def delete_pod(self, name):
        self._call("delete a pod", self.core.delete_namespaced_pod, name, self.namespace)

    def delete_all(self, selector):
        self._call(
            "delete pods", self.core.delete_collection_namespaced_pod, self.namespace, label_selector=selector
        )
        for svc in self._call(
            "list services", self.core.list_namespaced_service, self.namespace, label_selector=selector
        ).items:
            self._call("delete a service", self.core.delete_namespaced_service, svc.metadata.name, self.namespace)

    def logs(self, name):
        return self._call("read logs", self.core.read_namespaced_pod_log, name, self.namespace)


class KubeCluster(Cluster):
    """An oxidask cluster on Kubernetes: a scheduler pod behind a Service and ``n_workers``
    worker pods, made through the Kubernetes API (as dask-kubernetes' ``KubeCluster``).

    The configuration comes from the pod's service account or the kubeconfig (``KUBECONFIG``,
    ``config_file=``, ``context=``). ``image`` must have oxidask and the libraries your tasks
    import. ``scheduler_address`` is the Service's in-cluster name (for clients in the
    cluster); with ``scheduler_service_type="LoadBalancer"`` it is the load balancer's address,
    else use ``kubectl port-forward svc/<name>-scheduler 8786`` from outside. ``scale(n)``
    makes or deletes worker pods; ``close()`` deletes everything the cluster made. It is an
    :class:`~oxidask.distributed.Cluster`: a job is one worker pod (``scale(cores=)``,
    ``adapt()``, ``scale_down(pod names)``); a deleted pod's worker gets SIGTERM and retires
    gracefully.

    >>> from oxidask.distributed import Client
    >>> from oxidask.distributed.kubernetes import KubeCluster
    >>> cluster = KubeCluster(name="demo", image="registry.example/oxidask:0.1.0",
    ...                       n_workers=3, resources={"limits": {"cpu": "2", "memory": "8Gi"}})  # doctest: +SKIP
    >>> client = Client(cluster)                       # doctest: +SKIP
    """

    def __init__(
        self,
        name=None,
        namespace=None,
        image="oxidask/oxidask:0.1.0",
        n_workers=3,
        resources=None,
        env=None,
        worker_args=(),
        scheduler_service_type="ClusterIP",
        resource_timeout=300,
        config_file=None,
        context=None,
    ):
        name = name or f"oxidask-{uuid.uuid4().hex[:8]}"
        if not _NAME.match(name) or len(name) > 40:
            raise ValueError(
                f"KubeCluster: name {name!r} must be a DNS label: lower-case letters, digits "
                "and '-', at most 40 characters"
            )
        if scheduler_service_type not in ("ClusterIP", "NodePort", "LoadBalancer"):
            raise ValueError(
                f"KubeCluster: scheduler_service_type must be ClusterIP, NodePort or "
                f"LoadBalancer, not {scheduler_service_type!r}"
            )
        self.name = name
        self.image = image
        self.resources = resources
        self.env = env
        self.worker_args = list(worker_args)
        self.timeout = float(resource_timeout)
        # For scale(cores=, memory=): one pod's CPU and memory limits (Kubernetes quantities).
        limits = (resources or {}).get("limits", {})
        cpu, memory = str(limits.get("cpu", "")), str(limits.get("memory", ""))
        self._worker_threads = int(cpu) if cpu.isdigit() else 1
        self._worker_memory = parse_bytes(memory + "B" if memory.endswith("i") else memory) if memory else 0
        self.security = None
        self._closed = False
        self._scheduler_address = None
        self._api = _KubernetesApi(namespace, config_file, context)
        self.namespace = self._api.namespace
        self._selector = f"{CLUSTER_LABEL}={name}"
        try:
            self._api.create_service(scheduler_service(name, service_type=scheduler_service_type))
            self._api.create_pod(scheduler_pod(name, image, resources=resources, env=env))
            self._scheduler_address = self._wait_for_address(scheduler_service_type)
            self._internal_address = f"tcp://{name}-scheduler.{self.namespace}:8786"
            self.scale(n_workers)
        except BaseException:
            try:
                self.close()
            except Exception:
                pass  # the first error says more (often: the API is unreachable)
            raise

    def _wait_for_address(self, service_type):
        deadline = time.monotonic() + self.timeout
        while True:
            (pod,) = self._api.pods(f"{self._selector},app.kubernetes.io/component=scheduler") or [None]
            ready = pod is not None and any(
                c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or [])
            )
            if pod is not None and pod.status.phase in ("Failed", "Succeeded"):
                raise RuntimeError(
                    f"KubeCluster: the scheduler pod ended ({pod.status.phase}); its log:\n"
                    f"{self._api.logs(pod.metadata.name)}"
                )
            if ready:
                if service_type != "LoadBalancer":
                    return f"tcp://{self.name}-scheduler.{self.namespace}:8786"
                ingress = self._api.service(f"{self.name}-scheduler").status.load_balancer.ingress
                if ingress:
                    return f"tcp://{ingress[0].ip or ingress[0].hostname}:8786"
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"KubeCluster: the scheduler was not ready within {self.timeout:g} s "
                    f"(pod phase {pod.status.phase if pod else 'not created'}); see "
                    f"kubectl describe pod -n {self.namespace} {self.name}-scheduler"
                )
            time.sleep(2)

    @property
    def dashboard_link(self):
        """The dashboard's status page (reachable where the scheduler address is)."""
        host = self.scheduler_address.split("://", 1)[1].rsplit(":", 1)[0]
        return f"http://{host}:8787/status"

    @property
    def scheduler_address(self):
        """Where clients reach the scheduler (the Service's in-cluster name, or the load
        balancer's address)."""
        return self._scheduler_address

    @property
    def plan(self):
        """Names of the worker pods pending or running, oldest first."""
        return [p.metadata.name for p in self._worker_pods()]

    def _worker_pods(self):
        pods = self._api.pods(f"{self._selector},app.kubernetes.io/component=worker")
        return sorted(
            (p for p in pods if p.status.phase in ("Pending", "Running", None)),
            key=lambda p: p.metadata.creation_timestamp or 0,
        )

    def _scale_to_jobs(self, n):
        """Makes or deletes worker pods until ``n`` are pending or running (the newest go
        first)."""
        pods = self._worker_pods()
        for p in pods[n:][::-1]:
            self._api.delete_pod(p.metadata.name)
        for _ in range(n - len(pods)):
            name = f"{self.name}-worker-{uuid.uuid4().hex[:8]}"
            self._api.create_pod(
                worker_pod(self.name, name, self.image, self._internal_address, self.resources, self.env, self.worker_args)
            )

    def scale_down(self, workers):
        """Deletes these worker pods (by pod name, or a worker name ``POD-i``).

        >>> cluster.scale_down(["demo-worker-1a2b3c4d"])   # doctest: +SKIP
        """
        for job in {self._job_of(str(w)) for w in workers} - {None}:
            self._api.delete_pod(job)

    def get_logs(self, cluster=True, scheduler=True, workers=True):
        """Each pod's log: ``{"Scheduler": ..., worker pod name: ...}``.

        >>> cluster.get_logs()["Scheduler"]                # doctest: +SKIP
        """
        logs = {}
        if scheduler:
            logs["Scheduler"] = self._api.logs(f"{self.name}-scheduler")
        if workers:
            for p in self._worker_pods():
                logs[p.metadata.name] = self._api.logs(p.metadata.name)
        return logs

    def _close(self):
        """Deletes every pod and Service of this cluster."""
        if getattr(self, "_api", None) is not None:
            self._api.delete_all(self._selector)

    def __repr__(self):
        return f"KubeCluster({self.name!r}, namespace={self.namespace!r}, status={self.status})"
