"""Seed 002, "Scaling Python with Dask" (Karau & Kimmins), chapter 6 "Advanced Task Scheduling:
Futures and Friends" (/work/shared/seeds/002_a4585d93fb05fa64.txt, L3344-3831): its Python
examples run with only the imports changed (`import dask` -> `import oxidask as dask`,
`from dask.distributed import X` -> `from oxidask.distributed import X`, and
`from dask.distributed.client import FIRST_COMPLETED` ->
`from oxidask.distributed.client import FIRST_COMPLETED`). Note: with real Dask that last import
as the book spells it fails (dask.distributed is a module, not a package; the name lives in
distributed.client), so oxidask.distributed.client is a module oxidask has to provide for it.

Tests and the document lines they come from:
- test_example_6_1_launching_futures        L3526-3543  Example 6-1, Client(), client.submit, client.map
- test_example_6_2_future_life_cycle        L3569-3593  Example 6-2, = None / del / .cancel(), status in repr
- test_example_6_3_fire_and_forget          L3610-3631  Example 6-3, fire_and_forget(future)
- test_example_6_4_getting_the_result       L3649-3653  Example 6-4, future.result()
- test_example_6_5_list_of_results          L3660-3665  Example 6-5, f.result() in order
- test_example_6_6_as_completed             L3669-3679  Example 6-6, as_completed(futures)
- test_example_6_7_wait_first_completed     L3689-3707  Example 6-7, wait(futures, 1, return_when=FIRST_COMPLETED)
- test_example_6_8_wait_with_deadline       L3714-3731  Example 6-8, loop of wait() with TimeoutError, cancel the rest
- test_example_6_9_futures_start_eagerly    L3738-3754  Example 6-9, future vs dask.delayed timing
- test_example_6_10_nested_futures          L3768-3787  Example 6-10, get_client() inside a task, as_completed

Example 6-1 starts its own `client = Client()` as the book does (and closes it); the other
examples reuse the book's client, here the `client` fixture (conftest.py:
Client(LocalCluster(n_workers=2, threads_per_worker=1))).
The chapter has no secede/rejoin/worker_client, LocalCluster, bag or dataframe code; its
distributed data structures (Variable, queues, locks, L3796-3803) are described in prose only.

Changes beyond the imports:
- slow(x) sleeps 0.3 * x s instead of 3 * x s (it still returns 3 * x), and the "business logic"
  time.sleep(2) in Examples 6-5 and 6-6 is time.sleep(0.2), to keep the suite fast. Example 6-9's
  "Pretend we do some other work here" time.sleep(1) is kept at 1 s, so that, as in the book, the
  future has been running for a while when its result is asked for.
- Examples 6-5 to 6-8 use a `futures` list that the book does not define ("say, you created them
  with map", L3669); the tests create it with `futures = client.map(slow, range(1, 5))` as in
  Example 6-1. What the examples print is captured (capsys) and checked.
- Examples 6-3 and 6-4 call https://httpbin.org/get; here do_some_io calls the equivalent
  endpoint of the `local_web` fixture (http.server on 127.0.0.1, which echoes the query string as
  httpbin does): `requests.get(httpbin + '/get', params=data)` with httpbin = local_web.url.
  They need `requests`; the tests are skipped with a reason when it is missing.
- Statements whose value the book shows (`future.result()` in 6-4, `f.result()` in 6-10) have
  it kept in a variable to assert on. Example 6-9 uses timeit, which the book imported in
  Example 2-3; the test imports it.
- Example functions are defined inside the test functions so that they are shipped by value to
  the worker processes.
"""

import time
from concurrent.futures import CancelledError

import pytest

import oxidask as dask


def _printed_ints(capsys):
    return [int(line) for line in capsys.readouterr().out.split()]


def test_example_6_1_launching_futures():
    # --- 002:L3529-3539, as written (sleep 3 * x -> 0.3 * x)
    from oxidask.distributed import Client
    client = Client()


    def slow(x):
        time.sleep(0.3 * x)
        return 3 * x


    slow_future = client.submit(slow, 1)
    slow_futures = client.map(slow, range(1, 5))
    # ---
    try:
        # "as soon as the future is launched, Dask begins to compute the value" (L3543): the
        # results arrive without anything asking for them.
        deadline = time.monotonic() + 30
        while slow_future.status != "finished" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert slow_future.status == "finished"
        assert slow_future.result() == 3
        assert len(slow_futures) == 4
        assert [f.result() for f in slow_futures] == [3 * x for x in range(1, 5)]
        assert client.gather(slow_futures) == [3, 6, 9, 12]
    finally:
        client.close()


def test_example_6_2_future_life_cycle(client):
    def slow(x):
        time.sleep(0.3 * x)
        return 3 * x

    # --- 002:L3572-3580, as written
    myfuture = client.submit(slow, 5) # Starts running
    myfuture = None # future may be GCd and then stop since there are no other references

    myfuture = client.submit(slow, 5) # Starts running
    del myfuture # future may be GCd and then stop since there are no other references

    myfuture = client.submit(slow, 5) # Starts running
    # Future stops running, any other references point to canceled future
    myfuture.cancel()
    # ---

    # "The string representation of a future will show you where it is in its life cycle
    # (e.g., Future: slow status: cancelled,)" (L3593)
    assert myfuture.status == "cancelled"
    assert myfuture.cancelled()
    assert "cancelled" in repr(myfuture)
    # L3584: "if you are incorrect and the futures value is needed, this will cause an error"
    with pytest.raises(CancelledError):
        myfuture.result()

    # L3584: "If there is another reference to the future, then deleting or setting the individual
    # reference to None will not cancel the future. This means the result will remain stored."
    first = client.submit(slow, 1)
    other = first
    first = None
    assert other.result() == 3
    assert other.status == "finished"


def test_example_6_3_fire_and_forget(client, local_web):
    pytest.importorskip("requests", reason="Example 6-3 needs requests")
    httpbin = local_web.url  # local stand-in for https://httpbin.org
    requests_before = len(local_web.requests())

    # --- 002:L3613-3631, as written except the URL
    from oxidask.distributed import fire_and_forget


    def do_some_io(data):
        """
        Do some io we don't need to block on :)
        """
        import requests
        return requests.get(httpbin + '/get', params=data)


    def business_logic():
        # Make a future, but we don't really care about its result, just that it
        # happens
        future = client.submit(do_some_io, {"timbit": "awesome"})
        fire_and_forget(future)


    business_logic()
    # ---

    # No reference to the future is left, yet the call happens: the site receives the request.
    deadline = time.monotonic() + 30
    while (
        "/get?timbit=awesome" not in local_web.requests()[requests_before:]
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert "/get?timbit=awesome" in local_web.requests()[requests_before:]


def test_example_6_4_getting_the_result(client, local_web):
    pytest.importorskip("requests", reason="Example 6-4 needs requests")
    httpbin = local_web.url  # local stand-in for https://httpbin.org

    def do_some_io(data):
        """
        Do some io we don't need to block on :)
        """
        import requests
        return requests.get(httpbin + '/get', params=data)

    # --- 002:L3652-3653, as written
    future = client.submit(do_some_io, {"timbit": "awesome"})
    response = future.result()
    # ---

    # The value computed in the future: the requests.Response of the call.
    assert response.status_code == 200
    assert response.json()["args"] == {"timbit": "awesome"}


def test_example_6_5_list_of_results(client, capsys):
    def slow(x):
        time.sleep(0.3 * x)
        return 3 * x

    futures = client.map(slow, range(1, 5))

    # --- 002:L3663-3665, as written (sleep 2 -> 0.2)
    for f in futures:
        time.sleep(0.2) # Business numbers logic
        print(f.result())
    # ---

    # The results in the order of the list.
    assert _printed_ints(capsys) == [3 * x for x in range(1, 5)] == [3, 6, 9, 12]


def test_example_6_6_as_completed(client, capsys):
    def slow(x):
        time.sleep(0.3 * x)
        return 3 * x

    futures = client.map(slow, range(1, 5))

    # --- 002:L3675-3679, as written (sleep 2 -> 0.2)
    from oxidask.distributed import as_completed

    for f in as_completed(futures):
        time.sleep(0.2) # Business numbers logic
        print(f.result())
    # ---

    # Every future once, in the order they finish.
    assert sorted(_printed_ints(capsys)) == [3, 6, 9, 12]
    assert all(f.status == "finished" for f in futures)


def test_example_6_7_wait_first_completed(client, capsys):
    def slow(x):
        time.sleep(0.3 * x)
        return 3 * x

    futures = client.map(slow, range(1, 5))

    # --- 002:L3692-3707, as written
    from oxidask.distributed import wait
    from oxidask.distributed.client import FIRST_COMPLETED

    # Will throw an exception if no future completes in time.
    # If it does not throw, the result has two lists:
    # The done list may return between one and all futures.
    # The not_done list may contain zero or more futures.
    finished = wait(futures, 1, return_when=FIRST_COMPLETED)

    # Process the returned futures
    for f in finished.done:
        print(f.result())

    # Cancel the futures we don't need
    for f in finished.not_done:
        f.cancel()
    # ---

    printed = _printed_ints(capsys)
    assert 1 <= len(finished.done) <= 4
    assert len(finished.done) + len(finished.not_done) == 4
    assert set(finished.done) | set(finished.not_done) == set(futures)
    assert len(printed) == len(finished.done)
    assert set(printed) <= {3, 6, 9, 12}
    assert sorted(f.result() for f in finished.done) == sorted(printed)
    # Returned at the first completion: slow(4) (1.2 s) cannot have finished by then, since two
    # single-threaded workers need at least 1.5 s for all four.
    assert len(finished.not_done) >= 1
    assert all(f.status == "cancelled" for f in finished.not_done)

    # "Will throw an exception if no future completes in time" (L3695), the TimeoutError that
    # Example 6-8 catches.
    late = client.submit(slow, 10)
    with pytest.raises(TimeoutError):
        wait([late], 0.1, return_when=FIRST_COMPLETED)
    late.cancel()


def test_example_6_8_wait_with_deadline(client, capsys):
    from oxidask.distributed import wait
    from oxidask.distributed.client import FIRST_COMPLETED

    def slow(x):
        time.sleep(0.3 * x)
        return 3 * x

    futures = client.map(slow, range(1, 5))

    # --- 002:L3717-3731, as written
    max_wait = 10
    start = time.time()

    while len(futures) > 0 and time.time() - start < max_wait:
        try:
            finished = wait(futures, 1, return_when=FIRST_COMPLETED)
            for f in finished.done:
                print(f.result())
            futures = finished.not_done
        except TimeoutError:
            True # No future finished in this cycle

    # Cancel any remaining futures
    for f in futures:
        f.cancel()
    # ---

    # All four finish well within max_wait (about 1.5 s of work on two workers).
    assert sorted(_printed_ints(capsys)) == [3, 6, 9, 12]
    assert len(futures) == 0


def test_example_6_9_futures_start_eagerly(client, capsys):
    def slow(x):
        time.sleep(0.3 * x)
        return 3 * x

    # --- 002:L3741-3751, as written
    import timeit
    slow_future = client.submit(slow, 1)
    slow_delayed = dask.delayed(slow)(1)
    # Pretend we do some other work here
    time.sleep(1)
    future_time = timeit.timeit(lambda: slow_future.result(), number=1)
    delayed_time = timeit.timeit(lambda: dask.compute(slow_delayed), number=1)
    print(
        f"""So as you can see by the future time {future_time} v.s. {delayed_time}
        the future starts running right away."""
    )
    # ---

    assert "the future starts running right away" in capsys.readouterr().out
    # The future ran during the other work; the delayed starts only when computed, so it takes
    # at least slow(1)'s 0.3 s.
    assert delayed_time >= 0.3
    assert future_time < delayed_time
    assert slow_future.result() == 3
    assert dask.compute(slow_delayed) == (3,)


def test_example_6_10_nested_futures(client):
    from oxidask.distributed import as_completed

    def slow(x):
        time.sleep(0.3 * x)
        return 3 * x

    # --- 002:L3774-3787, as written
    from oxidask.distributed import get_client


    def nested(x):
        client = get_client() # The client is serializable, so we use get_client
        futures = client.map(slow, range(0, x))
        r = 0
        for f in as_completed(futures):
            r = r + f.result()
        return r


    f = client.submit(nested, 3)
    result = f.result()
    # ---

    # Plain-Python oracle: slow(0) + slow(1) + slow(2).
    assert result == sum(3 * x for x in range(0, 3)) == 9
