"""TLS credentials and authentication, as ``distributed.security``.

    >>> from oxidask.distributed import Client, LocalCluster, Security
    >>> sec = Security.temporary()                       # a fresh CA and certificate
    >>> cluster = LocalCluster(n_workers=2, security=sec)  # doctest: +SKIP
    >>> cluster.scheduler_address                          # doctest: +SKIP
    'tls://127.0.0.1:38051'
    >>> client = Client(cluster)                           # doctest: +SKIP

Each ``tls_*`` value is a path to a PEM file or the PEM text itself, as in Dask. oxidask
adds ``token=``: a shared secret every connection presents (checked before any message is
read), for deployments without certificates; by default it comes from the
``OXIDASK_DISTRIBUTED__COMM__AUTH__TOKEN`` environment variable.
"""

import os

from oxidask import _oxidask

__all__ = ["Security"]

_TOKEN_ENV = "OXIDASK_DISTRIBUTED__COMM__AUTH__TOKEN"


def _pem(value, what):
    """PEM text from a path or from the text itself."""
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{what} must be a path or PEM text, not {type(value).__name__}")
    text = os.fspath(value)
    if "-----BEGIN" in text:
        return text
    try:
        with open(text) as f:
            return f.read()
    except OSError as e:
        raise FileNotFoundError(f"cannot read the TLS {what} file {text!r}: {e.strerror}") from e


class Security:
    """Security settings for a client, scheduler or worker (Dask's ``Security``).

    One certificate per role, as in Dask: ``tls_client_*`` for a client,
    ``tls_scheduler_*`` and ``tls_worker_*`` for a ``LocalCluster``'s scheduler and workers
    (oxidask uses one certificate for both and takes the scheduler's, else the worker's).
    Connections are mutual TLS: each side's certificate must be signed by ``tls_ca_file``;
    host names are not checked, as in Dask.
    """

    def __init__(
        self,
        require_encryption=None,
        *,
        tls_ca_file=None,
        tls_client_cert=None,
        tls_client_key=None,
        tls_scheduler_cert=None,
        tls_scheduler_key=None,
        tls_worker_cert=None,
        tls_worker_key=None,
        tls_ciphers=None,
        tls_min_version=None,
        token=None,
        extra_conn_args=None,
    ):
        self.require_encryption = bool(require_encryption)
        self.tls_ca_file = _pem(tls_ca_file, "CA")
        self.tls_client_cert = _pem(tls_client_cert, "client certificate")
        self.tls_client_key = _pem(tls_client_key, "client key")
        self.tls_scheduler_cert = _pem(tls_scheduler_cert, "scheduler certificate")
        self.tls_scheduler_key = _pem(tls_scheduler_key, "scheduler key")
        self.tls_worker_cert = _pem(tls_worker_cert, "worker certificate")
        self.tls_worker_key = _pem(tls_worker_key, "worker key")
        if tls_ciphers is not None:
            raise NotImplementedError(
                "tls_ciphers: oxidask uses rustls's safe default cipher suites (TLS 1.2 and 1.3)"
            )
        self.tls_min_version = tls_min_version
        self.token = token if token is not None else os.environ.get(_TOKEN_ENV) or None
        self.extra_conn_args = extra_conn_args or {}

    @classmethod
    def temporary(cls, token=None):
        """Self-signed credentials made on the spot, for a ``LocalCluster`` and its clients
        (as Dask's ``Security.temporary()``)."""
        ca, cert, key = _oxidask.temporary_credentials()
        return cls(
            require_encryption=True,
            tls_ca_file=ca,
            tls_client_cert=cert,
            tls_client_key=key,
            tls_scheduler_cert=cert,
            tls_scheduler_key=key,
            tls_worker_cert=cert,
            tls_worker_key=key,
            token=token,
        )

    def _core(self, role):
        """What the engine takes: PEM text for ``role`` ("client" or "cluster")."""
        if role == "client":
            cert, key = self.tls_client_cert, self.tls_client_key
        else:
            cert = self.tls_scheduler_cert or self.tls_worker_cert
            key = self.tls_scheduler_key or self.tls_worker_key
        if (cert is None) != (key is None):
            raise ValueError(f"the {role} TLS certificate and key must be given together")
        return {
            "ca": self.tls_ca_file,
            "cert": cert,
            "key": key,
            "token": self.token,
            "require_encryption": self.require_encryption,
        }

    def __repr__(self):
        fields = []
        if self.tls_ca_file:
            fields.append("tls_ca_file=...")
        for name in ("client", "scheduler", "worker"):
            if getattr(self, f"tls_{name}_cert"):
                fields.append(f"tls_{name}_cert=...")
                fields.append(f"tls_{name}_key=...")
        if self.token:
            fields.append("token=...")
        if self.require_encryption:
            fields.append("require_encryption=True")
        return f"Security({', '.join(fields)})"
