"""Clusters from an ``oxidask gateway`` (Dask Gateway's client API: ``Gateway``,
``GatewayCluster``, ``BasicAuth``, ``GatewayAuth``).

The gateway is a multi-tenant service (``oxidask gateway --tokens-file tokens.txt``) that starts
clusters for authenticated users, scales them on request or adaptively, and stops them; each
cluster's scheduler requires a token only its owner is given, which ``get_client()`` presents.

>>> from oxidask.gateway import Gateway, BearerAuth           # doctest: +SKIP
>>> gateway = Gateway("http://127.0.0.1:8000", auth=BearerAuth("alice-token-0123456789"))
>>> cluster = gateway.new_cluster()                            # doctest: +SKIP
>>> cluster.adapt(minimum=2, maximum=5)                        # doctest: +SKIP
>>> client = cluster.get_client()                              # doctest: +SKIP
>>> client.submit(sum, [1, 2, 3]).result()                     # doctest: +SKIP
6
>>> cluster.shutdown()                                         # doctest: +SKIP

A custom authentication (the DestinE notebook's ``DESPAuth``) subclasses ``GatewayAuth`` and
returns headers from ``pre_request``, as with Dask Gateway.
"""

import base64
import json
import os
import urllib.error
import urllib.request

__all__ = [
    "BasicAuth",
    "BearerAuth",
    "Gateway",
    "GatewayAuth",
    "GatewayCluster",
    "GatewayClusterError",
    "GatewayServerError",
    "JupyterHubAuth",
]


class GatewayClusterError(Exception):
    """A cluster failed to start or is not running."""


class GatewayServerError(Exception):
    """The gateway refused a request (its message says why)."""


class GatewayAuth:
    """How requests are authenticated: ``pre_request(resp)`` returns ``(headers, cookies)``
    to add to each request (Dask Gateway's interface)."""

    def pre_request(self, resp):
        return {}, None


class BasicAuth(GatewayAuth):
    """HTTP basic authentication against the gateway's password file."""

    def __init__(self, username=None, password=None):
        self.username = username or os.environ.get("USER", "")
        self.password = password or ""

    def pre_request(self, resp):
        raw = f"{self.username}:{self.password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}, None


class BearerAuth(GatewayAuth):
    """A bearer token from the gateway's token file (``OXIDASK_GATEWAY_TOKEN`` by default)."""

    def __init__(self, api_token=None):
        self.api_token = api_token or os.environ.get("OXIDASK_GATEWAY_TOKEN")
        if not self.api_token:
            raise ValueError("BearerAuth needs api_token= or OXIDASK_GATEWAY_TOKEN")

    def pre_request(self, resp):
        return {"Authorization": "Bearer " + self.api_token}, None


class JupyterHubAuth(BearerAuth):
    """Dask Gateway's name for bearer-token authentication (``JUPYTERHUB_API_TOKEN``)."""

    def __init__(self, api_token=None):
        super().__init__(api_token or os.environ.get("JUPYTERHUB_API_TOKEN"))


def _auth(auth):
    if auth is None:
        if os.environ.get("OXIDASK_GATEWAY_TOKEN"):
            return BearerAuth()
        return GatewayAuth()
    if isinstance(auth, str):
        kinds = {"basic": BasicAuth, "bearer": BearerAuth, "jupyterhub": JupyterHubAuth}
        if auth not in kinds:
            raise ValueError(f"auth must be one of {sorted(kinds)} or a GatewayAuth, got {auth!r}")
        return kinds[auth]()
    if not hasattr(auth, "pre_request"):
        raise TypeError(f"auth must be a GatewayAuth (with pre_request), got {type(auth).__name__}")
    return auth


class Gateway:
    """A connection to an ``oxidask gateway`` at ``address`` (``http://host:port``, default
    ``$OXIDASK_GATEWAY_ADDRESS``). ``proxy_address`` is accepted for Dask Gateway
    compatibility: clusters' schedulers are reached at the addresses the gateway reports."""

    def __init__(self, address=None, proxy_address=None, public_address=None, auth=None,
                 asynchronous=False, loop=None, timeout=60):
        address = address or os.environ.get("OXIDASK_GATEWAY_ADDRESS")
        if not address:
            raise ValueError("Gateway needs address= (or OXIDASK_GATEWAY_ADDRESS)")
        if asynchronous:
            raise NotImplementedError("oxidask.gateway is synchronous")
        self.address = address.rstrip("/")
        self.proxy_address = proxy_address
        self.auth = _auth(auth)
        self.timeout = timeout

    def _request(self, method, path, body=None):
        headers, _ = self.auth.pre_request(None)
        headers = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.address + path, data=data, method=method,
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                text = r.read()
        except urllib.error.HTTPError as e:
            try:
                message = json.loads(e.read() or b"{}").get("error") or e.reason
            except ValueError:
                message = e.reason
            if e.code in (400, 404):  # a bad option or value; no such cluster of this user
                raise ValueError(message) from None
            if e.code in (401, 403):  # wrong credentials; over a limit
                raise PermissionError(message) from None
            if e.code == 409:
                raise GatewayClusterError(message) from None
            raise GatewayServerError(f"HTTP {e.code}: {message}") from None
        except urllib.error.URLError as e:
            raise ConnectionError(f"cannot reach the gateway at {self.address}: {e.reason}") from None
        return json.loads(text) if text else None

    def list_clusters(self, status=None):
        """The caller's starting and running clusters (reports with ``name``, ``status``,
        ``options``, ``workers``, ...)."""
        out = self._request("GET", "/api/v1/clusters/")
        reports = [ClusterReport(v) for v in out.values()]
        if status is not None:
            wanted = {status} if isinstance(status, str) else set(status)
            reports = [r for r in reports if r.status in {s.upper() for s in wanted}]
        return reports

    def cluster_options(self):
        """The options ``new_cluster`` accepts, their defaults and the gateway's limits."""
        return self._request("GET", "/api/v1/options")

    def submit(self, cluster_options=None, **kwargs):
        """Starts creating a cluster; returns its name at once."""
        options = dict(cluster_options or {})
        options.update(kwargs)
        return self._request("POST", "/api/v1/clusters/", {"cluster_options": options})["name"]

    def new_cluster(self, cluster_options=None, shutdown_on_close=True, **kwargs):
        """A new cluster (``worker_threads=``, ``worker_memory=``, ``workers=`` options),
        once its scheduler runs."""
        name = self.submit(cluster_options, **kwargs)
        return self.connect(name, shutdown_on_close=shutdown_on_close)

    def connect(self, cluster_name, shutdown_on_close=False):
        """The caller's cluster ``cluster_name`` (waiting while it starts)."""
        return GatewayCluster._from_report(self, self._report(cluster_name, wait=True),
                                           shutdown_on_close)

    def _report(self, name, wait=False):
        return self._request("GET", f"/api/v1/clusters/{name}" + ("?wait=true" if wait else ""))

    def stop_cluster(self, cluster_name):
        """Stops the caller's cluster ``cluster_name``."""
        self._request("DELETE", f"/api/v1/clusters/{cluster_name}")

    def close(self):
        """Nothing to release (each request is its own connection)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"Gateway<{self.address}>"


class ClusterReport:
    """A cluster as the gateway reports it."""

    def __init__(self, data):
        self._data = data
        self.name = data["name"]
        self.status = data["status"]
        self.options = data.get("options") or {}
        self.workers = data.get("workers", 0)
        self.scheduler_address = data.get("scheduler_address")
        self.dashboard_link = data.get("dashboard_link")
        self.start_time = data.get("start_time")

    def __repr__(self):
        return f"ClusterReport<name={self.name}, status={self.status}>"


class GatewayCluster:
    """A cluster managed by a gateway: ``scale``, ``adapt``, ``get_client``, ``shutdown``,
    ``dashboard_link``, ``get_logs``; ``Client(cluster)`` works as for a LocalCluster."""

    def __init__(self, address=None, proxy_address=None, auth=None, cluster_options=None,
                 shutdown_on_close=True, **kwargs):
        gateway = Gateway(address, proxy_address=proxy_address, auth=auth)
        name = gateway.submit(cluster_options, **kwargs)
        self._init(gateway, gateway._report(name, wait=True), shutdown_on_close)

    @classmethod
    def _from_report(cls, gateway, report, shutdown_on_close):
        self = cls.__new__(cls)
        self._init(gateway, report, shutdown_on_close)
        return self

    @classmethod
    def from_name(cls, cluster_name, shutdown_on_close=False, address=None, auth=None):
        """The running cluster ``cluster_name`` of this user."""
        return Gateway(address, auth=auth).connect(cluster_name, shutdown_on_close)

    def _init(self, gateway, report, shutdown_on_close):
        if report["status"] != "RUNNING":
            raise GatewayClusterError(
                f"cluster {report['name']} is {report['status'].lower()}: {report.get('error') or ''}"
            )
        self.gateway = gateway
        self.name = report["name"]
        self.scheduler_address = report["scheduler_address"]
        self.dashboard_link = report.get("dashboard_link")
        self._token = report.get("token")
        self.shutdown_on_close = shutdown_on_close
        self.status = "running"
        self._client = None

    @property
    def security(self):
        """The ``Security`` (the cluster's token) its clients present."""
        from oxidask.distributed.security import Security

        return Security(token=self._token)

    def scale(self, n=0, **kwargs):
        """Asks for ``n`` workers (adaptive scaling stops)."""
        self.gateway._request("POST", f"/api/v1/clusters/{self.name}/scale", {"count": int(n)})

    def adapt(self, minimum=None, maximum=None, active=True, **kwargs):
        """Scales between ``minimum`` and ``maximum`` workers with the work: the gateway asks
        the scheduler how many workers its queued and running work needs and retires idle
        workers (their results move to the others) after a few consistent answers."""
        self.gateway._request("POST", f"/api/v1/clusters/{self.name}/adapt",
                              {"minimum": minimum, "maximum": maximum, "active": bool(active)})

    def get_client(self, set_as_default=True):
        """A ``Client`` of this cluster (connected with its token)."""
        from oxidask.distributed import Client

        if self._client is None or self._client.status != "running":
            self._client = Client(self.scheduler_address, security=self.security,
                                  set_as_default=set_as_default)
        return self._client

    def get_logs(self):
        """The newest lines of the scheduler's and workers' logs, by process."""
        lines = self.gateway._request("GET", f"/api/v1/clusters/{self.name}/logs")["logs"]
        out = {}
        for line in lines:
            who, _, text = line.partition(": ")
            out.setdefault(who, []).append(text)
        return {k: "\n".join(v) for k, v in out.items()}

    def report(self):
        """The gateway's report of this cluster."""
        return ClusterReport(self.gateway._report(self.name))

    def shutdown(self):
        """Stops the cluster."""
        if self.status == "closed":
            return
        if self._client is not None:
            self._client.close()
            self._client = None
        self.gateway.stop_cluster(self.name)
        self.status = "closed"

    def close(self, shutdown=None):
        """Closes this handle; stops the cluster if ``shutdown`` (default: the
        ``shutdown_on_close`` it was made with)."""
        if shutdown if shutdown is not None else self.shutdown_on_close:
            self.shutdown()
        elif self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"GatewayCluster<{self.name}, status={self.status}>"
