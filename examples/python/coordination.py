"""Coordination between tasks with Dask's distributed data structures, on oxidask.

A producer task feeds a bounded ``Queue`` that two consumer tasks drain; a ``Lock`` guards a
shared tally kept in a ``Variable``; a ``Semaphore`` lets at most two tasks "use the
database" at once; an ``Event`` tells the consumers to stop; results are published as a
dataset other clients can pick up by name. Runs on a LocalCluster of worker processes.

    python examples/python/coordination.py
"""

import time

from oxidask.distributed import (
    Client,
    Event,
    LocalCluster,
    Lock,
    Queue,
    Semaphore,
    Variable,
)


def produce(n):
    jobs = Queue("jobs", maxsize=4)  # put() waits while 4 jobs are queued
    for i in range(n):
        jobs.put(i)
    return n


def consume(worker_id):
    jobs, done = Queue("jobs", maxsize=4), Event("done")
    tally, lock = Variable("tally"), Lock("tally")
    db = Semaphore(max_leases=2, name="database")
    handled = 0
    while True:
        try:
            job = jobs.get(timeout=0.2)
        except TimeoutError:
            if done.is_set():
                return handled
            continue
        with db:  # at most two tasks "in the database" at once
            time.sleep(0.001)
        with lock:  # read-modify-write of the shared tally
            tally.set(tally.get() + job * job)
        handled += 1


def main():
    with LocalCluster(n_workers=3, threads_per_worker=1) as cluster, Client(cluster) as client:
        Variable("tally").set(0)
        consumers = [client.submit(consume, i, pure=False) for i in range(2)]
        producer = client.submit(produce, 100)
        print("jobs produced:", producer.result())
        while Queue("jobs").qsize() > 0:
            time.sleep(0.05)
        Event("done").set()
        handled = client.gather(consumers)
        print("jobs handled by each consumer:", handled, "total", sum(handled))
        tally = Variable("tally").get(timeout=5)
        print("sum of squares under the lock:", tally)
        assert tally == sum(i * i for i in range(100))
        client.publish_dataset(squares=client.map(lambda x: x * x, range(10)))
        with Client(cluster.scheduler_address, set_as_default=False) as other:
            print("another client reads the dataset:", other.gather(other.get_dataset("squares")))
        print("datasets:", client.list_datasets())


if __name__ == "__main__":
    main()
