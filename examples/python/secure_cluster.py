"""A secured cluster: TLS with temporary credentials, plus a token, as Dask users set it up.

Run it with `python examples/python/secure_cluster.py` after `pip install ./python`. It starts
a LocalCluster of two worker processes whose every connection is mutual TLS and token
authenticated, computes on it, then shows what a client without the cluster's credentials
is told.
"""

from oxidask.distributed import Client, LocalCluster, Security


def square(x):
    return x * x


def main():
    security = Security.temporary(token="example-token")
    with LocalCluster(n_workers=2, threads_per_worker=1, security=security,
                      dashboard_address=None) as cluster:
        print("scheduler at", cluster.scheduler_address)
        with Client(cluster) as client:
            total = client.submit(sum, client.map(square, range(100)))
            print("sum of squares over TLS:", total.result())
        for label, other in [
            ("no credentials", None),
            ("another CA", Security.temporary(token="example-token")),
            ("the right CA, a wrong token", Security(
                tls_ca_file=security.tls_ca_file,
                tls_client_cert=security.tls_client_cert,
                tls_client_key=security.tls_client_key,
                token="guess",
            )),
        ]:
            try:
                Client(cluster.scheduler_address, security=other, timeout=2)
            except Exception as e:  # a clear refusal, not a hang
                print(f"{label}: refused — {e}")


if __name__ == "__main__":
    main()
