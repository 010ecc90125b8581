"""Seed 001: DestinE Data Lake "STACK service - Dask 101" notebook
(/work/shared/seeds/001_11ddbd760f56a75b.txt), its Python cells run with only the imports changed
(`import dask` -> `import oxidask as dask`, `from dask.distributed import X` ->
`from oxidask.distributed import X`).

Tests and the document lines they come from:
- test_read_transform_write_delayed      L98-114   @dask.delayed process_file over filenames, dask.compute(results)
- test_delayed_inc_dec_add               L117-165  inc/dec/add run eagerly, wrapped with dask.delayed, z.compute()
- test_lazy_for_loop_and_persist         L167-179  256 delayed chains in a for-loop, dask.persist(*zs)
- test_read_transform_write_futures      L247-261, L297-301  client.submit(process_file, ...), client.gather(futures)
- test_futures_submit_result_wait        L262-295  submit/status/result/progress/wait on one future
- test_futures_as_arguments              L303-312  client.submit(sum, [future_x, future_y]), progress(future_z)

Skipped on purpose:
- L9-94 dask.array (np.ones / da.ones / chunks / sum / mean / visualize): dask.array is a
  separate, later piece of work.
- L181-231 Dask Gateway, DESP bearer-token GatewayAuth, gateway.new_cluster(), cluster.get_client(),
  cluster.adapt(minimum=2, maximum=5), and L313 cluster.close(shutdown=True): deployment, later.
  In their place the futures tests use the `client` fixture (conftest.py):
  Client(LocalCluster(n_workers=2, threads_per_worker=1)), closed after the module.
- L160 z.visualize(format='svg', rankdir='LR'): rendering a picture needs Graphviz and shows
  nothing to assert on here.
The notebook has no client.map and no as_completed; those are tested from the book (test_book_ch6.py).

Changes beyond the imports:
- The notebook's placeholders read_a_file / do_a_transformation / write_out_data / filenames
  (L104-112, L250-257) are not defined in the document; the tests define them over a temporary
  folder (read a text file, upper-case it, write it under results/).
- Notebook cells that end with an expression (`z`, `z.compute()`, `dask.compute(results)`,
  `future.result()`, `client.gather(futures)`) have that value kept in a variable to assert on.
- %%time cells are timed with time.perf_counter() where the test asserts something about time.
- L262-312: sleep(1) -> sleep(0.1) to keep the suite fast.
- L171-179: the for-loop reuses inc/dec/add (sleeps 0.1/0.1/0.2 s) 256 times, which is 102 s of
  sleeping (about 51 s on a 2-core machine); for this test the sleeps are 0.01/0.01/0.02 s.
- Example functions are defined inside the test functions (as notebook cells define them in the
  session), so that they are shipped by value to worker processes.
"""

import time

import oxidask as dask


def _make_file_helpers(base):
    """The notebook's undefined placeholders, over the folder `base`."""
    import pathlib

    base = pathlib.Path(base)

    def read_a_file(filename):
        return (base / filename).read_text()

    def do_a_transformation(data):
        return data.upper()

    def write_out_data(data, destination):
        (base / destination).write_text(data)

    return read_a_file, do_a_transformation, write_out_data


def _make_input_files(base):
    (base / "results").mkdir()
    filenames = ["2024-01-01.txt", "2024-01-02.txt", "2024-01-03.txt", "2024-01-04.txt"]
    for filename in filenames:
        (base / filename).write_text(f"measurements of {filename}\n")
    return filenames


def _check_outputs(base, filenames):
    for filename in filenames:
        assert (base / "results" / filename).read_text() == f"measurements of {filename}\n".upper()


def test_read_transform_write_delayed(tmp_path):
    filenames = _make_input_files(tmp_path)
    read_a_file, do_a_transformation, write_out_data = _make_file_helpers(tmp_path)

    # --- 001:L100-114, as written
    import oxidask as dask

    @dask.delayed
    def process_file(filename):
        data = read_a_file(filename)
        data = do_a_transformation(data)
        destination = f"results/{filename}"
        write_out_data(data, destination)
        return destination

    results = []
    for filename in filenames:
        results.append(process_file(filename))

    computed = dask.compute(results)
    # ---

    # dask.compute returns a tuple with one entry per argument: here the list of destinations.
    assert computed == ([f"results/{filename}" for filename in filenames],)
    _check_outputs(tmp_path, filenames)


def test_delayed_inc_dec_add():
    # --- 001:L119-131, as written
    import time

    def inc(x):
        time.sleep(0.1)
        return x + 1

    def dec(x):
        time.sleep(0.1)
        return x - 1

    def add(x, y):
        time.sleep(0.2)
        return x + y

    # --- 001:L135-139 (run like normal Python functions)
    x = inc(1)
    y = dec(2)
    z = add(x, y)
    eager_z = z
    # ---
    assert eager_z == 3  # inc(1) + dec(2) = 2 + 1

    # --- 001:L145-148
    import oxidask as dask
    inc = dask.delayed(inc)
    dec = dask.delayed(dec)
    add = dask.delayed(add)

    # --- 001:L152-156 ("Calling these lazy functions is now almost free")
    start = time.perf_counter()
    x = inc(1)
    y = dec(2)
    z = add(x, y)
    z
    build_time = time.perf_counter() - start
    # ---

    # Building the graph ran none of the sleeps (run eagerly they take 0.4 s).
    assert build_time < 0.2
    assert not isinstance(z, int)

    # --- 001:L164-165
    result = z.compute()
    # ---
    assert result == eager_z == 3


def test_lazy_for_loop_and_persist():
    import time

    # 001:L119-131 and L145-148, with the sleeps divided by 10 for this 256-iteration loop.
    def inc(x):
        time.sleep(0.01)
        return x + 1

    def dec(x):
        time.sleep(0.01)
        return x - 1

    def add(x, y):
        time.sleep(0.02)
        return x + y

    inc = dask.delayed(inc)
    dec = dask.delayed(dec)
    add = dask.delayed(add)

    # --- 001:L171-179, as written
    zs = []
    for i in range(256):
        x = inc(i)
        y = dec(x)
        z = add(x, y)
        zs.append(z)

    zs = dask.persist(*zs)   # trigger computation in the background
    # ---

    # persist returns one (persisted, still lazy) object per argument, in order.
    assert isinstance(zs, tuple)
    assert len(zs) == 256
    # Plain Python oracle: x = i + 1, y = x - 1 = i, z = x + y = 2 * i + 1.
    expected = tuple((i + 1) + ((i + 1) - 1) for i in range(256))
    assert dask.compute(*zs) == expected
    assert zs[10].compute() == 21


def test_read_transform_write_futures(client, tmp_path):
    filenames = _make_input_files(tmp_path)
    read_a_file, do_a_transformation, write_out_data = _make_file_helpers(tmp_path)

    # --- 001:L249-261, as written
    def process_file(filename):
        data = read_a_file(filename)
        data = do_a_transformation(data)
        destination = f"results/{filename}"
        write_out_data(data, destination)
        return destination

    futures = []
    for filename in filenames:
        future = client.submit(process_file, filename)
        futures.append(future)

    futures
    # ---
    assert len(futures) == len(filenames)

    # --- 001:L299 ("gathers results from more than one future")
    gathered = client.gather(futures)
    # ---
    assert gathered == [f"results/{filename}" for filename in filenames]
    _check_outputs(tmp_path, filenames)


def test_futures_submit_result_wait(client):
    # --- 001:L262-267 (sleep(1) -> sleep(0.1))
    from time import sleep

    def inc(x):
        sleep(0.1)
        return x + 1

    # --- 001:L271 (run locally)
    local = inc(1)
    # ---
    assert local == 2

    # --- 001:L275-276
    future = client.submit(inc, 1)  # returns immediately with pending future
    future
    # ---
    assert future.status == "pending"

    # 001:L278-280 "If you wait a second, and then check on the future again, you'll see that it
    # has finished." (bounded wait, without blocking on the result)
    deadline = time.monotonic() + 30
    while future.status != "finished" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert future.status == "finished"

    # --- 001:L284
    result = future.result()
    # ---
    assert result == 2

    # --- 001:L288-289 and L293, as written
    from oxidask.distributed import wait, progress
    progress(future)
    wait(future)
    # ---
    assert future.status == "finished"
    assert future.result() == 2

    # 001:L295 "Dask notices that we are asking for the result of a computation it already knows
    # about": submitting the same call again names the same result.
    again = client.submit(inc, 1)
    assert again.key == future.key
    assert again.result() == 2


def test_futures_as_arguments(client):
    # --- 001:L303-312, as written (sleep(1) -> sleep(0.1))
    from time import sleep

    from oxidask.distributed import wait, progress
    def inc(x):
        sleep(0.1)
        return x + 1


    future_x = client.submit(inc, 1)
    future_y = client.submit(inc, 2)
    future_z = client.submit(sum, [future_x, future_y])
    progress(future_z)
    # ---

    # The futures inside the list are replaced by their results: sum([inc(1), inc(2)]).
    assert future_z.result() == sum([1 + 1, 2 + 1]) == 5
    assert future_x.result() == 2
    assert future_y.result() == 3
    wait([future_x, future_y, future_z])
    assert {f.status for f in (future_x, future_y, future_z)} == {"finished"}
