"""A multi-tenant gateway, as the DestinE notebook (seed 001) uses Dask Gateway: a gateway
process with two users, a cluster for one of them that scales with its work, and the other
user kept out of it.

    python examples/python/gateway_cluster.py

Everything is started here (the gateway on a free loopback port, its token file in a
temporary directory) and stopped at the end.
"""

import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from oxidask.gateway import BearerAuth, Gateway, GatewayAuth

ALICE = "alice-0123456789abcdef"
BOB = "bob-0123456789abcdef"


class TokenAuth(GatewayAuth):
    """A custom authentication, shaped like the notebook's DESPAuth."""

    def __init__(self, token):
        self.access_token = token

    def pre_request(self, _):
        return {"Authorization": "Bearer " + self.access_token}, None


def start_gateway(workdir):
    tokens = Path(workdir) / "tokens"
    tokens.write_text(f"alice {ALICE}\nbob {BOB}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "oxidask", "gateway", "--address", "127.0.0.1:0",
         "--tokens-file", str(tokens), "--work-dir", str(Path(workdir) / "clusters"),
         "--adapt-interval", "0.5"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    found = []
    ready = threading.Event()

    def read():
        for line in proc.stderr:
            if "listening at" in line:
                found.append(line.rsplit(" ", 1)[1].strip())
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(30):
        proc.kill()
        raise RuntimeError("the gateway did not start")
    return proc, found[0]


def slow_square(x):
    time.sleep(0.2)
    return x * x


def main():
    with tempfile.TemporaryDirectory() as workdir:
        proc, url = start_gateway(workdir)
        try:
            gateway = Gateway(address=url, auth=TokenAuth(ALICE))
            cluster = gateway.new_cluster(worker_threads=1)
            print(f"cluster {cluster.name} at {cluster.scheduler_address}")
            cluster.adapt(minimum=1, maximum=3)
            client = cluster.get_client()
            client.wait_for_workers(1, timeout=60)
            futures = client.map(slow_square, range(40))
            peak = 0
            while not all(f.done() for f in futures):
                peak = max(peak, cluster.report().workers)
                time.sleep(0.2)
            total = client.submit(sum, futures).result()
            print(f"sum of squares: {total}")
            print(f"workers asked for at the peak: {peak}")
            others = Gateway(address=url, auth=BearerAuth(BOB))
            print(f"bob sees {len(others.list_clusters())} clusters")
            try:
                others.connect(cluster.name)
            except ValueError as e:
                print(f"bob cannot connect: {e}")
            client.close()
            cluster.shutdown()
            print(f"alice's clusters after shutdown: {len(gateway.list_clusters())}")
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
