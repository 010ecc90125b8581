"""Fixtures of the array tests.

- ``scheduler``: each test that takes it runs on the ``sync`` and the ``threads`` schedulers.
- ``client``: a distributed client on ``LocalCluster(n_workers=2, threads_per_worker=1)``
  (real worker processes), one per test module, closed when the module is done.


"""

import pytest




@pytest.fixture(params=["sync", "threads"])
def scheduler(request):
    return request.param


@pytest.fixture(scope="module")
def client():
    from oxidask.distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
