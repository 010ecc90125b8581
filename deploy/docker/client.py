"""The compose file's client container: connects to $OXIDASK_SCHEDULER_ADDRESS (as Dask's
``Client()`` with ``DASK_SCHEDULER_ADDRESS``), waits for $OXIDASK_EXPECT_WORKERS workers, runs a
small computation on them and prints one JSON line: the workers (threads, memory limit) and the
result.

Example::

    docker-compose --compatibility -f deploy/docker/docker-compose.yml run --rm client
"""

import json
import os

from oxidask.distributed import Client


def main():
    """Runs the computation and prints the JSON line."""
    expect = int(os.environ.get("OXIDASK_EXPECT_WORKERS", "1"))
    with Client() as client:
        client.wait_for_workers(expect, timeout=120)
        futures = client.map(lambda x: x * x + 1, range(1000))
        total = client.submit(sum, futures).result()
        ran_on = {a for addrs in client.who_has(futures).values() for a in addrs}
        workers = client.scheduler_info()["workers"]
        print(
            json.dumps(
                {
                    "scheduler": client.scheduler_address,
                    "result": total,
                    "workers": {
                        a: {"nthreads": w["nthreads"], "memory_limit": w["memory_limit"]}
                        for a, w in workers.items()
                    },
                    "ran_on": sorted(ran_on),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
