"""Regression tests for bugs found in the client, its buffers and the Rust threads that run
Python, each named after the bug. Checks that used to crash or hang the interpreter run in a
subprocess with a deadline, so a crash or a deadlock fails the test instead of ending pytest."""

import subprocess
import sys
import textwrap

import pytest

from oxidask.distributed import Client, LocalCluster


def run_python(source, timeout=120):
    """Runs ``source`` in a new interpreter; returns the completed process (output as text).
    A deadlock shows as ``subprocess.TimeoutExpired`` (the interpreter is killed)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False) as cluster:
        with Client(cluster, set_as_default=False) as c:
            yield c


# -- ReceivedBuffer could be instantiated from Python, then crashed ----------------------


def test_received_buffer_cannot_be_instantiated_from_python():
    r = run_python(
        """
        import gc
        import numpy as np
        from oxidask.distributed import Client, LocalCluster

        with LocalCluster(n_workers=1, threads_per_worker=1, processes=False) as cl, \\
                Client(cl, set_as_default=False) as c:
            a = c.submit(lambda x: x + 0, c.scatter(np.arange(100000, dtype="i8"))).result()
        b = a
        while getattr(b, "base", None) is not None:
            b = b.base
        T = type(b)
        print(T.__name__, flush=True)
        for make in (lambda: T(), lambda: T.__new__(T), lambda: object.__new__(T)):
            try:
                x = make()
            except TypeError:
                print("TypeError", flush=True)
            else:
                # Whatever made it, using and freeing it must not crash.
                try:
                    memoryview(x)
                except BufferError:
                    pass
                del x
                gc.collect()
                print("made", flush=True)
        """
    )
    assert r.returncode == 0, f"crashed ({r.returncode}): {r.stdout}{r.stderr}"
    assert r.stdout.split() == ["ReceivedBuffer", "TypeError", "TypeError", "TypeError"], (
        r.stdout + r.stderr
    )


# -- two threads submitting the same function deadlocked on its pickle ------------------


def test_two_threads_submitting_a_function_that_pickles_slowly_do_not_deadlock():
    r = run_python(
        """
        import threading
        from oxidask.distributed import Client, LocalCluster

        class Slow:
            # Pickles in Python, slowly: the GIL changes hands meanwhile.
            def __reduce__(self):
                s = 0
                for i in range(3_000_000):
                    s += i
                return (Slow, ())

        with LocalCluster(n_workers=1, threads_per_worker=2, processes=False) as cl, \\
                Client(cl, set_as_default=False) as c:
            helper = Slow()

            def f(x):
                return (x, helper is not None)

            res = {}

            def go(i):
                res[i] = c.submit(f, i, pure=False).result()

            ts = [threading.Thread(target=go, args=(i,)) for i in range(2)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            print(sorted(res.values()), flush=True)
        """,
        timeout=90,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "[(0, True), (1, True)]", r.stdout + r.stderr


# -- the client's function cache was locked while Python ran -----------------------------


def test_function_cache_lookups_that_run_python_do_not_deadlock():
    r = run_python(
        """
        import threading
        from oxidask.distributed import Client, LocalCluster

        class Op:
            # A callable whose attribute lookups run Python (a __getattr__-based wrapper).
            def __call__(self, x):
                return x

            def __getattr__(self, name):
                s = 0
                for i in range(3_000_000):
                    s += i
                raise AttributeError(name)

        with LocalCluster(n_workers=1, threads_per_worker=2, processes=False) as cl, \\
                Client(cl, set_as_default=False) as c:
            ops = [Op(), Op()]
            res = {}

            def go(i):
                res[i] = c.submit(ops[i], i).result()

            ts = [threading.Thread(target=go, args=(i,)) for i in range(2)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            print(sorted(res.values()), flush=True)
        """,
        timeout=90,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "[0, 1]", r.stdout + r.stderr


def test_function_cache_evicting_many_functions_still_sends_each_right(client):
    # More functions than the cache keeps: evicted entries are dropped, the rest still work.
    fs = [eval(f"lambda x: x + {i}") for i in range(300)]
    futures = [client.submit(f, 1, pure=False) for f in fs]
    assert client.gather(futures) == [1 + i for i in range(300)]
    again = [client.submit(fs[i], 2, pure=False) for i in (0, 150, 299)]
    assert client.gather(again) == [2, 152, 301]


# -- ClientCore.future(key) hashed the key text instead of reading it --------------------


def test_future_of_an_existing_content_key_resolves(client):
    f = client.submit(abs, -5)
    assert f.result() == 5
    g = client._core.future(f.key)
    assert g.key == f.key
    assert g.result(timeout=10) == 5


def test_future_of_a_user_named_key_resolves(client):
    for key in ("my-task", "my-task-1", "total-0123456789abcdef01234567"):
        f = client.submit(abs, -7, key=key)
        assert f.result() == 7
        g = client._core.future(key)
        assert g.key == key
        assert g.result(timeout=10) == 7


# -- every exiting worker thread leaked a Python thread state ----------------------------


def test_exiting_worker_threads_release_their_python_thread_state():
    r = run_python(
        """
        import ctypes, time
        from oxidask.distributed import Client, LocalCluster, get_client

        api = ctypes.pythonapi
        api.PyInterpreterState_Get.restype = ctypes.c_void_p
        api.PyInterpreterState_ThreadHead.restype = ctypes.c_void_p
        api.PyInterpreterState_ThreadHead.argtypes = [ctypes.c_void_p]
        api.PyThreadState_Next.restype = ctypes.c_void_p
        api.PyThreadState_Next.argtypes = [ctypes.c_void_p]

        def tstates():
            n, t = 0, api.PyInterpreterState_ThreadHead(api.PyInterpreterState_Get())
            while t:
                n, t = n + 1, api.PyThreadState_Next(t)
            return n

        def parent(i):
            # Waiting inside a task secedes: a new executor thread starts, this one ends later.
            return get_client().submit(abs, -i, pure=False).result()

        with LocalCluster(n_workers=1, threads_per_worker=1, processes=False) as cl, \\
                Client(cl, set_as_default=False) as c:
            counts = []
            for _ in range(4):
                c.gather([c.submit(parent, i, pure=False) for i in range(50)])
                time.sleep(0.5)
                counts.append(tstates())
            print(counts, flush=True)
            print(counts[-1] - counts[0], flush=True)
        """
    )
    assert r.returncode == 0, r.stdout + r.stderr
    growth = int(r.stdout.split()[-1])
    # 150 seceded threads ended between the first and the last count.
    assert growth < 30, r.stdout


def test_a_cluster_dropped_without_close_does_not_wait_for_the_gil_its_threads_need():
    # The garbage collector drops the cluster holding the GIL and joins the worker threads:
    # threads that ran Python must end without taking the GIL.
    r = run_python(
        """
        import gc
        from oxidask.distributed import Client, LocalCluster, get_client

        def parent(i):
            return get_client().submit(abs, -i, pure=False).result()

        cl = LocalCluster(n_workers=2, threads_per_worker=2, processes=False)
        c = Client(cl, set_as_default=False)
        print(sum(c.gather([c.submit(parent, i, pure=False) for i in range(10)])), flush=True)
        del c, cl
        gc.collect()
        print("dropped", flush=True)
        """,
        timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split() == ["45", "dropped"], r.stdout + r.stderr
