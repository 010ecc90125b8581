"""Data on a cluster: NumPy arrays and pandas objects as task arguments and results travel
intact (checked against NumPy and pandas computing the same thing here), results are
writeable arrays, large arrays work, and a scattered array serves many tasks."""

import numpy as np
import pytest

from oxidask.distributed import Client, LocalCluster

try:
    import pandas as pd
except ImportError:  # the NumPy tests still run
    pd = None

needs_pandas = pytest.mark.skipif(pd is None, reason="pandas is not installed")


# -- functions the tasks run (module level: the workers import this file) ------------------


def identity(x):
    return x


def describe_array(a):
    """What a task sees of an array."""
    return {
        "shape": a.shape,
        "dtype": str(a.dtype),
        "writeable": bool(a.flags.writeable),
        "sum": a.sum() if a.dtype.kind in "biufc" else None,
    }


def scale_and_shift(a, factor, shift=0):
    return a * factor + shift


def matmul(a, b):
    return a @ b


def fill_in_place(a, value):
    """Writes into its argument (which must therefore be writeable) and returns it."""
    a[...] = value
    return a


def slice_sum(a, start, stop):
    return float(a[start:stop].sum())


def row_norms(a, rows):
    return np.linalg.norm(a[rows], axis=-1)


def checksum(a):
    return int(a.view(np.uint8).sum(dtype=np.uint64)), a.nbytes


def make_array(n, seed):
    return np.random.default_rng(seed).standard_normal(n)


def groupby_mean(df):
    return df.groupby("key")["value"].mean()


def add_column(df):
    out = df.copy()
    out["double"] = out["value"] * 2
    return out


def concat_frames(*frames):
    return pd.concat(frames)


def series_cumsum(s):
    return s.cumsum()


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# -- NumPy ---------------------------------------------------------------------------------


ARRAYS = {
    "float64": lambda rng: rng.standard_normal((50, 40)),
    "int32": lambda rng: rng.integers(-1000, 1000, size=1000, dtype=np.int32),
    "uint8": lambda rng: rng.integers(0, 255, size=(7, 11, 3), dtype=np.uint8),
    "complex128": lambda rng: rng.standard_normal(64) + 1j * rng.standard_normal(64),
    "bool": lambda rng: rng.standard_normal(100) > 0,
    "float32-fortran": lambda rng: np.asfortranarray(rng.standard_normal((30, 20)).astype(np.float32)),
    "transposed": lambda rng: rng.standard_normal((20, 30)).T,
    "strided": lambda rng: rng.standard_normal(1000)[::7],
    "zero-d": lambda rng: np.array(3.5),
    "empty": lambda rng: np.zeros((0, 5)),
    "datetime64": lambda rng: np.arange("2024-01-01", "2024-03-01", dtype="datetime64[D]"),
    "timedelta64": lambda rng: np.arange(10).astype("timedelta64[s]"),
    "structured": lambda rng: np.array(
        [(1, 2.5, b"ab"), (3, -1.0, b"cd")], dtype=[("i", "i4"), ("f", "f8"), ("s", "S2")]
    ),
    "unicode": lambda rng: np.array(["alpha", "beta", "γάμμα"]),
    "object": lambda rng: np.array([1, "two", None, [3]], dtype=object),
}


@pytest.mark.parametrize("kind", sorted(ARRAYS))
def test_arrays_round_trip_through_a_task(client, rng, kind):
    a = ARRAYS[kind](rng)
    got = client.submit(identity, a, pure=False).result(timeout=30)
    assert isinstance(got, np.ndarray)
    assert got.dtype == a.dtype
    assert got.shape == a.shape
    np.testing.assert_array_equal(got, a)


@pytest.mark.parametrize("kind", sorted(ARRAYS))
def test_pure_submit_of_arrays_keys_them_by_value(client, rng, kind):
    # submit is pure by default: the key comes from the function and the arguments' values.
    a = ARRAYS[kind](rng)
    f = client.submit(identity, a)
    g = client.submit(identity, a.copy())
    assert f.key == g.key
    np.testing.assert_array_equal(f.result(timeout=30), a)


def test_pure_submit_of_different_arrays_gives_different_keys(client):
    a = np.arange(100.0)
    b = a.copy()
    b[50] = -1.0
    assert client.submit(identity, a).key != client.submit(identity, b).key
    assert client.submit(identity, a).key != client.submit(identity, a.astype(np.float32)).key
    assert client.submit(identity, a).key != client.submit(identity, a.reshape(10, 10)).key


def test_arrays_as_arguments_and_results_match_numpy(client, rng):
    a = rng.standard_normal((200, 300))
    b = rng.standard_normal((300, 50))
    np.testing.assert_allclose(client.submit(matmul, a, b).result(), a @ b)
    np.testing.assert_array_equal(
        client.submit(scale_and_shift, a, 3.0, shift=-1.0).result(), a * 3.0 - 1.0
    )
    info = client.submit(describe_array, a).result()
    assert info["shape"] == (200, 300)
    assert info["dtype"] == "float64"
    assert info["sum"] == pytest.approx(a.sum())


def test_results_are_writeable_arrays(client, rng):
    a = rng.standard_normal(10_000)
    got = client.submit(scale_and_shift, a, 2.0).result()
    assert got.flags.writeable
    got[0] = 123.0  # does not raise
    assert got[0] == 123.0
    gathered = client.gather([client.submit(identity, a), client.submit(make_array, 100, 1)])
    assert all(x.flags.writeable for x in gathered)


def test_arguments_are_writeable_in_the_task(client, rng):
    a = rng.standard_normal(1000)
    info = client.submit(describe_array, a).result()
    assert info["writeable"] is True
    filled = client.submit(fill_in_place, a, 7.0).result()
    np.testing.assert_array_equal(filled, np.full(1000, 7.0))
    # The caller's array is untouched.
    assert not np.all(a == 7.0)


def test_results_of_a_task_feed_the_next_task(client):
    x = client.submit(make_array, 10_000, 5)
    y = client.submit(scale_and_shift, x, 0.5, shift=2.0)
    expected = np.random.default_rng(5).standard_normal(10_000) * 0.5 + 2.0
    np.testing.assert_array_equal(y.result(), expected)


def test_a_large_array_travels_intact(client):
    n = 50 * 2**20 // 8  # 50 MiB of float64
    a = np.arange(n, dtype=np.float64)
    a[::4097] = -1.5
    f = client.submit(identity, a)
    got = f.result(timeout=120)
    assert got.nbytes == 50 * 2**20
    np.testing.assert_array_equal(got, a)
    assert got.flags.writeable
    # And a large result made on a worker.
    total, nbytes = client.submit(checksum, a).result(timeout=120)
    assert nbytes == a.nbytes
    assert total == int(a.view(np.uint8).sum(dtype=np.uint64))


def test_a_large_array_made_on_a_worker(client):
    n = 50 * 2**20 // 8
    got = client.submit(make_array, n, 99).result(timeout=120)
    np.testing.assert_array_equal(got, np.random.default_rng(99).standard_normal(n))


def test_a_scattered_array_serves_many_tasks(client, rng):
    a = rng.standard_normal(1_000_000)
    [remote] = client.scatter([a])
    bounds = [(i * 50_000, (i + 1) * 50_000) for i in range(20)]
    futures = [client.submit(slice_sum, remote, lo, hi, pure=False) for lo, hi in bounds]
    got = client.gather(futures)
    assert got == pytest.approx([a[lo:hi].sum() for lo, hi in bounds])
    np.testing.assert_array_equal(remote.result(), a)


def test_a_broadcast_array_serves_tasks_on_every_worker(client, rng):
    a = rng.standard_normal((1000, 8))
    remote = client.scatter(a, broadcast=True)
    rows = [list(range(i, 1000, 50)) for i in range(50)]
    futures = client.map(row_norms, [remote] * len(rows), rows, pure=False)
    got = client.gather(futures)
    for r, g in zip(rows, got):
        np.testing.assert_allclose(g, np.linalg.norm(a[r], axis=-1))


def test_scatter_a_dict_of_arrays(client, rng):
    data = {"arr-a": rng.standard_normal(100), "arr-b": rng.standard_normal(100)}
    remote = client.scatter(data)
    total = client.submit(np.add, remote["arr-a"], remote["arr-b"]).result()
    np.testing.assert_array_equal(total, data["arr-a"] + data["arr-b"])


# -- pandas --------------------------------------------------------------------------------


@pytest.fixture
def frame(rng):
    if pd is None:
        pytest.skip("pandas is not installed")
    n = 1000
    return pd.DataFrame(
        {
            "key": rng.choice(["a", "b", "c", "d"], size=n),
            "value": rng.standard_normal(n),
            "count": rng.integers(0, 100, size=n),
            "flag": rng.standard_normal(n) > 0,
            "when": pd.date_range("2024-01-01", periods=n, freq="h"),
            "label": pd.Categorical(rng.choice(["x", "y"], size=n)),
        },
        index=pd.Index(np.arange(n) * 3, name="id"),
    )


def test_a_dataframe_round_trips(client, frame):
    got = client.submit(identity, frame).result()
    pd.testing.assert_frame_equal(got, frame)


def test_dataframe_computations_match_pandas(client, frame):
    pd.testing.assert_series_equal(client.submit(groupby_mean, frame).result(), groupby_mean(frame))
    pd.testing.assert_frame_equal(client.submit(add_column, frame).result(), add_column(frame))


def test_dataframe_pieces_combined_on_the_cluster(client, frame):
    pieces = client.scatter([frame.iloc[:300], frame.iloc[300:700], frame.iloc[700:]])
    combined = client.submit(concat_frames, *pieces).result()
    pd.testing.assert_frame_equal(combined, frame)


@needs_pandas
def test_a_series_round_trips_and_computes(client, rng):
    s = pd.Series(rng.standard_normal(500), index=pd.date_range("2024-01-01", periods=500), name="s")
    pd.testing.assert_series_equal(client.submit(identity, s).result(), s)
    pd.testing.assert_series_equal(client.submit(series_cumsum, s).result(), s.cumsum())


def test_a_dataframe_result_can_be_modified_in_place(client, frame):
    got = client.submit(add_column, frame).result()
    expected = add_column(frame)
    for df in (got, expected):  # "assignment destination is read-only" if its data were
        df.loc[df.index[0], "value"] = 1e9
        df.iloc[1, df.columns.get_loc("double")] = -5.0
        df["count"] += 1
        df.loc[:, "value"] *= 2
    pd.testing.assert_frame_equal(got, expected)


def _make_array(n):
    import numpy as np

    return np.arange(n, dtype=np.float64)


def test_received_arrays_are_views_of_the_received_bytes_not_copies(client):
    """Out-of-band pickle buffers: the array the client gets is backed by the frame it
    received (oxidask's ReceivedBuffer), not by a copy made while unpickling."""
    a = client.submit(_make_array, 1_000_000, pure=False).result(timeout=60)
    base = a
    while getattr(base, "base", None) is not None:
        base = base.base
    owner = base.obj if isinstance(base, memoryview) else base
    assert type(owner).__name__ == "ReceivedBuffer", type(owner)
    assert a.flags.writeable
    a[0] = -1.0  # written in place
    assert a[0] == -1.0 and a[1] == 1.0
