"""Actors (Dask's ``actor=True``) on a ``LocalCluster`` of worker processes: the book's
BankAccount and Counter (chapter 7), calls run one at a time in submission order, exceptions
re-raised with their type, attributes read, proxies passed to tasks that call the actor from
their own worker, a killed worker's actor failing with an actor-lost error, the actor going
when its future and proxies are released, and bad input (missing methods, unpicklable
arguments or results).
"""

import os
import signal
from collections import Counter as Counter_of
import threading
import time

import pytest

from oxidask.distributed import Actor, ActorFuture, Client, LocalCluster, wait

# -- classes and functions the workers run (module level: the workers import this file) ------


class BankAccount:
    """A bank account actor (similar to counter but with + and -)"""

    # 42 is a good start
    def __init__(self, balance=42.0):
        self._balance = balance

    def deposit(self, amount):
        if amount < 0:
            raise Exception("Cannot deposit negative amount")
        self._balance += amount
        return self._balance

    def withdrawal(self, amount):
        if amount > self._balance:
            raise Exception("Please deposit more money first.")
        self._balance -= amount
        return self._balance

    def balance(self):
        return self._balance


class Counter:
    n = 0

    def __init__(self, start=0):
        self.n = start
        self.seen = []

    def increment(self, by=1):
        self.n += by
        return self.n

    def record(self, tag):
        # A read-modify-write with a window: concurrent calls would interleave and lose
        # updates if the actor ran two calls at once.
        seen = list(self.seen)
        time.sleep(0.0005)
        seen.append(tag)
        self.seen = seen
        return len(seen)

    def getpid(self):
        return os.getpid()

    def make_lock(self):
        return threading.Lock()

    def fail(self, kind):
        raise InsufficientFunds(f"{kind} is not allowed")


class InsufficientFunds(ValueError):
    pass


def increment_from_task(counter, by):
    # The proxy was pickled into the task; the call goes from this worker to the actor's.
    return counter.increment(by).result()


def record_from_task(counter, tag):
    return counter.record(tag).result()


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(n_workers=2, threads_per_worker=2)
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


# -- the book's examples -------------------------------------------------------------------


def test_bank_account_book_example(client):
    account_future = client.submit(BankAccount, actor=True)
    account = account_future.result()
    assert isinstance(account, Actor)
    assert repr(account).startswith("<Actor: BankAccount, key=BankAccount-")
    balance_future = account.balance()
    assert isinstance(balance_future, ActorFuture)
    assert balance_future.result() == 42.0
    f = account.withdrawal(100)
    with pytest.raises(Exception, match="Please deposit more money first."):
        f.result()
    assert account.deposit(100).result() == 142.0
    assert account.withdrawal(100).result() == 42.0
    with pytest.raises(Exception, match="Cannot deposit negative amount"):
        account.deposit(-1).result()
    # The failed calls changed nothing.
    assert account.balance().result() == 42.0


def test_counter_with_arguments_and_attribute(client):
    counter = client.submit(Counter, 10, actor=True).result()
    assert counter.increment().result() == 11
    assert counter.increment(by=5).result() == 16
    assert counter.n == 16  # attributes are read, not called, as in Dask
    assert counter.seen == []  # an attribute the class does not define


def test_sketchy_bank_pool(client):
    # The book's hashing pool: several actors, each owning some of the accounts.
    actors = [f.result() for f in client.map(BankAccount, [0.0] * 4, actor=True)]
    assert len({a.key for a in actors}) == 4
    # As in Dask, each actor goes to the worker holding the fewest: spread over both.
    assert sorted(Counter_of(a._address for a in actors).values()) == [2, 2]
    for i, a in enumerate(actors):
        a.deposit(i + 1)
    assert [a.balance().result() for a in actors] == [1.0, 2.0, 3.0, 4.0]


# -- ordering and concurrency --------------------------------------------------------------


def test_calls_run_in_submission_order(client):
    counter = client.submit(Counter, actor=True).result()
    futures = [counter.increment() for _ in range(500)]
    assert [f.result() for f in futures] == list(range(1, 501))
    assert counter.n == 500


def test_concurrent_callers_never_interleave(client):
    counter = client.submit(Counter, actor=True).result()
    results = {}

    def caller(t):
        fs = [counter.record((t, i)) for i in range(50)]
        results[t] = [f.result() for f in fs]

    threads = [threading.Thread(target=caller, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    # No lost update: 200 calls, each saw the list one longer than the one before it.
    assert sorted(sum(results.values(), [])) == list(range(1, 201))
    seen = counter.seen
    assert len(seen) == 200
    # Each caller's calls ran in the order it made them.
    for t in range(4):
        assert [i for (u, i) in seen if u == t] == list(range(50))
        assert results[t] == sorted(results[t])


def test_actor_passed_to_tasks(client):
    counter = client.submit(Counter, actor=True).result()
    futures = client.map(increment_from_task, [counter] * 20, range(1, 21))
    values = client.gather(futures)
    # Every task's call ran on the one actor, one at a time: the totals it returned are
    # distinct partial sums ending at the full sum.
    assert len(set(values)) == 20
    assert max(values) == sum(range(1, 21)) == counter.n


def test_actor_future_as_task_argument(client):
    actor_future = client.submit(Counter, actor=True)
    futures = client.map(record_from_task, [actor_future] * 10, range(10))
    assert sorted(client.gather(futures)) == list(range(1, 11))
    assert sorted(actor_future.result().seen) == list(range(10))


def test_await_actor_future(client):
    import asyncio

    counter = client.submit(Counter, actor=True).result()

    async def main():
        return [await counter.increment() for _ in range(3)]

    assert asyncio.run(main()) == [1, 2, 3]


# -- errors --------------------------------------------------------------------------------


def test_exception_keeps_its_type(client):
    counter = client.submit(Counter, actor=True).result()
    f = counter.fail("overdraft")
    with pytest.raises(InsufficientFunds, match="overdraft is not allowed"):
        f.result()
    # The actor keeps serving.
    assert counter.increment().result() == 1


def test_missing_method_is_attribute_error(client):
    counter = client.submit(Counter, actor=True).result()
    with pytest.raises(AttributeError):
        counter.no_such_method()
    assert not hasattr(counter, "nope")
    assert counter.increment().result() == 1


def test_unpicklable_arguments_and_results(client):
    counter = client.submit(Counter, actor=True).result()
    with pytest.raises(TypeError, match="arguments of Counter.increment cannot be pickled"):
        counter.increment(threading.Lock())
    with pytest.raises(TypeError, match="result of Counter.make_lock .* cannot be pickled"):
        counter.make_lock().result()
    assert counter.increment().result() == 1


def test_actor_future_is_not_picklable(client):
    import pickle

    counter = client.submit(Counter, actor=True).result()
    f = counter.increment()
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(f)
    assert f.result() == 1
    # The proxy itself pickles (that is how it reaches tasks).
    again = pickle.loads(pickle.dumps(counter))
    assert again.increment().result() == 2


def test_constructor_error_fails_the_future(client):
    f = client.submit(BankAccount, "not a number", actor=True)
    account = f.result()  # made fine; the error comes on use
    with pytest.raises(TypeError):
        account.deposit(1).result()
    f = client.submit(Counter, 1, 2, 3, actor=True)
    with pytest.raises(TypeError):
        f.result()


# -- lifetime ------------------------------------------------------------------------------


def test_release_frees_the_actor(client):
    future = client.submit(Counter, actor=True)
    counter = future.result()
    assert counter.increment().result() == 1
    # A copy that holds no future (as a task's copy does) keeps calling while the client
    # holds the actor...
    detached = Actor(counter._cls, counter._address, counter.key)
    detached._future = None
    assert detached.increment().result() == 2
    # ... and fails once the client releases the future and every proxy.
    del future, counter
    deadline = time.monotonic() + 60
    while True:
        try:
            detached.increment().result()
        except RuntimeError as e:
            assert "was released" in str(e)
            break
        assert time.monotonic() < deadline, "the actor was not freed"
        time.sleep(0.05)


def test_killed_worker_loses_the_actor():
    with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, Client(cluster) as client:
        future = client.submit(Counter, actor=True)
        counter = future.result()
        assert counter.increment().result() == 1
        pid = counter.getpid().result()
        assert pid != os.getpid()  # the worker process (under its nanny, if any)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(OSError, match="was lost"):
            counter.increment().result(timeout=60)
        # Later calls fail the same way; the actor is not recomputed elsewhere.
        with pytest.raises(OSError, match="was lost"):
            counter.increment().result(timeout=60)
        wait(future, timeout=60)
        with pytest.raises(Exception, match="actors are not recomputed"):
            future.result()
        # The other worker still serves new actors.
        other = client.submit(Counter, actor=True).result()
        assert other.increment().result() == 1


class Forwarder:
    def forward(self, counter, by):
        # An actor calling another actor, from the actor's own thread on its worker.
        return counter.increment(by).result()


def test_actor_calls_another_actor(client):
    counter = client.submit(Counter, actor=True).result()
    forwarder = client.submit(Forwarder, actor=True).result()
    assert forwarder.forward(counter, 5).result() == 5
    assert forwarder.forward(counter, 2).result() == 7
    assert counter.n == 7


class Gate:
    def pass_when_set(self, name):
        from oxidask.distributed import Event

        # Coordination objects work inside actors (the actor's thread has the worker's
        # client).
        return Event(name).wait(timeout=120)


def test_result_timeout_and_done(client):
    from oxidask.distributed import Event, TimeoutError

    gate = client.submit(Gate, actor=True).result()
    name = f"gate-{time.monotonic_ns()}"
    f = gate.pass_when_set(name)
    with pytest.raises(TimeoutError):
        f.result(timeout=0.05)
    assert not f.done()
    Event(name, client=client).set()
    assert f.result() is True
    assert f.done()
