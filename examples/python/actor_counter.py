"""Actors with Dask's API, on oxidask (the book's chapter 7).

A ``Counter`` and the book's ``BankAccount`` live on one worker each; calling their methods
returns ``ActorFuture``s at once, the calls run one at a time in the order they were made
(no locks), exceptions come back with their type, attributes are read directly, and tasks on
other workers call the same actor. Runs on a LocalCluster of worker processes.

    python examples/python/actor_counter.py
"""

import time

from oxidask.distributed import Client, LocalCluster


class Counter:
    n = 0

    def __init__(self):
        self.n = 0

    def increment(self, by=1):
        self.n += by
        return self.n


class BankAccount:
    """A bank account actor (similar to counter but with + and -)"""

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


def bump(counter, by):
    # The actor proxy travelled into this task; the call goes straight to the actor's worker.
    return counter.increment(by).result()


def main():
    with LocalCluster(n_workers=2, threads_per_worker=2) as cluster, Client(cluster) as client:
        counter = client.submit(Counter, actor=True).result()
        print(counter)
        futures = [counter.increment() for _ in range(100)]  # non-blocking
        results = [f.result() for f in futures]
        assert results == list(range(1, 101))
        print(f"100 calls from the client, answered in order: last {results[-1]}, counter.n = {counter.n}")

        totals = client.gather(client.map(bump, [counter] * 20, range(1, 21)))
        assert max(totals) == counter.n == 100 + sum(range(1, 21))
        print(f"20 tasks called it too: counter.n = {counter.n}")

        account = client.submit(BankAccount, actor=True).result()
        print(f"balance {account.balance().result()}")
        try:
            account.withdrawal(100).result()
        except Exception as e:
            print(f"withdrawal of 100 refused: {e}")
        print(f"deposit 100: balance {account.deposit(100).result()}")
        print(f"withdrawal 100: balance {account.withdrawal(100).result()}")

        n = 2000
        lat = []
        for _ in range(n):
            t = time.perf_counter()
            counter.increment().result()
            lat.append(time.perf_counter() - t)
        lat.sort()
        print(f"{n} sequential calls: p50 {lat[n // 2] * 1e3:.3f} ms, p99 {lat[n * 99 // 100] * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
