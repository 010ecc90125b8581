"""Seed 002, "Scaling Python with Dask" (Karau & Kimmins), chapter 3 "How Dask Works: The Basics"
(/work/shared/seeds/002_a4585d93fb05fa64.txt, L928-1705): its Python examples run with only the
imports changed (`import dask` -> `import oxidask as dask`).

Tests and the document lines they come from:
- test_example_3_1_threads_backend           L994-1003   Example 3-1, dask.config.set(scheduler='threads')
- test_example_3_2_processes_backend         L1007-1013  Example 3-2, dask.config.set(scheduler='processes')
- test_example_3_3_forkserver_backend        L1017-1031  Example 3-3, multiprocessing.context forkserver
- test_example_3_4_unserializable_result     L1198-1218  Example 3-4, ConnectionClass / bad_fun "Fails to serialize"
- test_example_3_5_custom_serialization      L1222-1241  Example 3-5, SerConnectionClass with __getstate__
- test_example_3_7_task_dependencies         L1446-1476  Example 3-7, @dask.delayed() string_magic(f, f)

Skipped on purpose:
- Example 3-6 (L1290-1296): dask.array (da.from_array(..., chunks=10)), a later piece of work.
- Example 3-8 (L1601-1612): df.persist / futures_of(df) on a Dask DataFrame, which is not
  available yet.
- The dask.bag word-count graph of Figure 3-2 (L1489-1498): in test_book_ch5_bag.py, with the
  bag tests.

Changes beyond the imports:
- Examples 3-1 to 3-3 call dask.config.set(...) as a statement, which changes the configuration
  for the rest of the process; each test undoes it afterwards (the object dask.config.set returns
  is the context manager that restores the previous values) so the other tests keep the default
  scheduler. They then compute a small delayed task on the configured backend to assert on.
- Examples 3-4 and 3-5 open a TCP connection to www.scalingpythonml.com:80; here it goes to the
  `local_web` fixture (http.server on 127.0.0.1) instead: ConnectionClass(host, port) with
  host, port = local_web.host, local_web.port.
- Example 3-4 guards the failing call with `if False:`; the test makes the call (on the
  distributed `client` fixture, where results are serialized) and expects it to fail.
- Example 3-5 only defines a class; the test returns one from a task on the `client` fixture.
- Example functions and classes are defined inside the test functions so that they are shipped by
  value to the worker processes.
"""

import os
import threading

import pytest

import oxidask as dask


def test_example_3_1_threads_backend():
    # --- 002:L1003, as written
    restore = dask.config.set(scheduler='threads')
    # ---
    try:
        @dask.delayed
        def where(x):
            import os
            return os.getpid(), x + 1

        (pid, value), = dask.compute(where(1))
        assert value == 2
        # Threads of this process: nothing is serialized or sent to another process (L997).
        assert pid == os.getpid()

        # A result that cannot be pickled is fine on threads, since nothing is serialized.
        @dask.delayed
        def make_lock():
            return threading.Lock()

        lock = make_lock().compute()
        assert lock.acquire(blocking=False)
        lock.release()
    finally:
        restore.__exit__(None, None, None)


def test_example_3_2_processes_backend():
    # --- 002:L1013, as written
    restore = dask.config.set(scheduler='processes')
    # ---
    try:
        @dask.delayed
        def where(x):
            import os
            return os.getpid(), x + 1

        @dask.delayed
        def total(parts):
            return sum(value for _, value in parts)

        parts = [where(i) for i in range(4)]
        (results, grand_total) = dask.compute(parts, total(parts))
        assert [value for _, value in results] == [1, 2, 3, 4]
        assert grand_total == sum(i + 1 for i in range(4))
        # Separate processes launched to avoid the GIL (L1007).
        assert all(pid != os.getpid() for pid, _ in results)
    finally:
        restore.__exit__(None, None, None)


def test_example_3_3_forkserver_backend():
    # --- 002:L1023-1024, as written
    restore = dask.config.set({"multiprocessing.context": "forkserver",
                    "scheduler": "processes"})
    # ---
    try:
        @dask.delayed
        def where(x):
            import os
            return os.getpid(), x * x

        results = dask.compute(*[where(i) for i in range(3)])
        assert [value for _, value in results] == [0, 1, 4]
        assert all(pid != os.getpid() for pid, _ in results)
    finally:
        restore.__exit__(None, None, None)


def test_example_3_4_unserializable_result(client, local_web):
    host, port = local_web.host, local_web.port  # stand-in for www.scalingpythonml.com, 80

    # --- 002:L1204-1218, as written except the host and port and the `if False:` guard
    class ConnectionClass:
        def __init__(self, host, port):
            import socket
            self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.socket.connect((host, port))


    @dask.delayed
    def bad_fun(x):
        return ConnectionClass(host, port)


    # Fails to serialize
    with pytest.raises(Exception, match=r"(?i)seriali|pickl"):
        dask.compute(bad_fun(1))
    # ---
    # (Dask raises TypeError("Could not serialize object of type ConnectionClass").)

    # Control: the same class used inside a task whose result is plain data works, so the
    # failure above is the socket-holding result, not the task or the connection.
    @dask.delayed
    def peer_port(x):
        return ConnectionClass(host, port).socket.getpeername()[1]

    assert dask.compute(peer_port(1)) == (port,)


def test_example_3_5_custom_serialization(client, local_web):
    host, port = local_web.host, local_web.port  # stand-in for www.scalingpythonml.com, 80

    # Example 3-4's ConnectionClass, which Example 3-5 wraps (host and port: see the header).
    class ConnectionClass:
        def __init__(self, host, port):
            import socket
            self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.socket.connect((host, port))

    # --- 002:L1225-1237, as written
    class SerConnectionClass:
        def __init__(self, conn):
            import socket
            self.conn = conn

        def __getstate__(self):
            state_dict = {
                "host": self.conn.socket.getpeername()[0],
                "port": self.conn.socket.getpeername()[1]}
            return state_dict

        def __setsate__(self, state):
            self.conn = ConnectionClass(state["host"], state["port"])
    # ---

    @dask.delayed
    def good_fun(x):
        return SerConnectionClass(ConnectionClass(host, port))

    (wrapped,) = dask.compute(good_fun(1))
    # The wrapper crossed from the worker to the client through __getstate__: only the peer's
    # address travels. The book's method is spelled `__setsate__` (sic), so pickle never calls
    # it and the state dict becomes the instance's attributes as-is.
    assert type(wrapped).__name__ == "SerConnectionClass"
    assert vars(wrapped) == {"host": host, "port": port}


def test_example_3_7_task_dependencies():
    # --- 002:L1452-1466, as written
    @dask.delayed()
    def string_magic(x, y):
        lower_x = x.lower()
        lower_y = y.lower()
        return (lower_x in lower_y) or (lower_y in lower_x)


    @dask.delayed()
    def gen(x):
        return x


    f = gen("hello world")
    compute = string_magic(f, f)
    # ---

    # Plain-Python oracle: the same functions called directly.
    def oracle(x, y):
        return (x.lower() in y.lower()) or (y.lower() in x.lower())

    assert compute.compute() is oracle("hello world", "hello world") is True
    assert f.compute() == "hello world"
    # The shared node and its dependent computed together (L1466-1476).
    assert dask.compute(f, compute) == ("hello world", True)
    # Different inputs through the same graph shape.
    assert string_magic(gen("Hello"), gen("WORLD hello")).compute() is True
    assert string_magic(gen("abc"), gen("xyz")).compute() is False
