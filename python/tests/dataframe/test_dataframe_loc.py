"""``DataFrame.loc`` / ``Series.loc`` against pandas on the same data: masks, columns,
label slices, single labels and lists on numeric, string and datetime indexes, and the
partition pruning known divisions allow (fewer partitions in the result)."""

import doctest

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest
from pandas.errors import IndexingError

import oxidask.dataframe as dd
import oxidask.dataframe.indexing


@pytest.fixture(scope="module")
def data():
    n = 60
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "i": np.arange(n) * 2,  # even numbers 0..118
            "x": rng.integers(-100, 100, size=n),
            "y": rng.normal(size=n),
            "s": [f"key{j:03d}" for j in range(n)],
            "t": pd.date_range("2019-01-01", periods=n, freq="7h"),
        }
    )


def frames(data, column, npartitions=4):
    """The oxidask frame indexed by ``column`` (known divisions) and pandas' equivalent."""
    df = dd.from_pandas(data, npartitions=npartitions).set_index(column)
    pdf = data.set_index(column)
    # The engine keeps datetimes in the unit pandas' meta reports (Polars: microseconds).
    if column == "t":
        pdf.index = pdf.index.astype(df._meta.index.dtype)
    return df, pdf


def check(got, want, scheduler="sync"):
    out = got.compute(scheduler=scheduler)
    if isinstance(want, pd.Series):
        pdt.assert_series_equal(out, want)
    else:
        pdt.assert_frame_equal(out, want)


# ---- masks and columns (no index needed)


def test_mask_and_columns(data, scheduler):
    df = dd.from_pandas(data, npartitions=3)
    check(df.loc[df.x > 10], data.loc[data.x > 10].reset_index(drop=True), scheduler)
    check(df.loc[df.x > 10, ["s", "y"]],
          data.loc[data.x > 10, ["s", "y"]].reset_index(drop=True), scheduler)
    check(df.loc[:, ["y", "x"]], data.loc[:, ["y", "x"]], scheduler)
    check(df.loc[:, "x"], data.loc[:, "x"], scheduler)
    check(df.loc[df.y < 0, "s"], data.loc[data.y < 0, "s"].reset_index(drop=True), scheduler)
    check(df.loc[lambda d: d.x < 0], data.loc[data.x < 0].reset_index(drop=True), scheduler)
    check(df.loc[:, "x":"s"], data.loc[:, "x":"s"], scheduler)
    check(df.x.loc[df.x > 50], data.x.loc[data.x > 50].reset_index(drop=True), scheduler)
    check(df.loc[df.x > 1000], data.loc[data.x > 1000].reset_index(drop=True), scheduler)


def test_errors(data):
    df = dd.from_pandas(data, npartitions=3)
    with pytest.raises(KeyError):
        df.loc[:, "nope"]
    with pytest.raises(KeyError):
        df.loc[df.x > 0, ["x", "nope"]]
    with pytest.raises(KeyError, match="non-boolean"):
        df.loc[df.x]
    with pytest.raises(IndexingError):
        df.loc[1, "x", "y"]
    with pytest.raises(IndexingError):
        df.x.loc[1, 2]
    with pytest.raises(NotImplementedError, match="set_index"):
        df.loc[2:5]
    with pytest.raises(NotImplementedError, match="set_index"):
        df.loc[3]
    with pytest.raises(TypeError, match="item assignment"):
        df.loc[df.x > 0, "x"] = 1
    ix, _ = frames(data, "i")
    with pytest.raises(KeyError):
        ix.loc[:, "i"]  # the index is not a column
    with pytest.raises(TypeError, match="slice indexing"):
        ix.loc["a":"b"]
    with pytest.raises(KeyError):
        ix.loc["a"]
    with pytest.raises(NotImplementedError, match="step"):
        ix.loc[0:10:2]
    with pytest.raises(NotImplementedError, match="boolean"):
        ix.loc[[True, False]]


# ---- numeric index


@pytest.mark.parametrize("npartitions", [1, 4, 7])
def test_numeric_index(data, npartitions, scheduler):
    df, pdf = frames(data, "i", npartitions)
    for key in [slice(10, 40), slice(11, 39), slice(None, 25), slice(90, None), slice(0, 118),
                slice(-5, 3), slice(200, 300), slice(40, 10), slice(7, 7), slice(6.5, 20.5)]:
        check(df.loc[key], pdf.loc[key], scheduler)
    check(df.loc[[4, 50, 100]], pdf.loc[[4, 50, 100]], scheduler)
    check(df.loc[[]], pdf.loc[[]], scheduler)
    check(df.loc[np.array([0, 118])], pdf.loc[np.array([0, 118])], scheduler)
    check(df.loc[[np.int64(8)], ["x"]], pdf.loc[[8], ["x"]], scheduler)
    check(df.loc[20:30, "y"], pdf.loc[20:30, "y"], scheduler)
    check(df.y.loc[20:30], pdf.y.loc[20:30], scheduler)
    check(df.y.loc[[2, 64]], pdf.y.loc[[2, 64]], scheduler)
    # One label: the rows equal to it as a DataFrame (as Dask gives), empty when absent.
    check(df.loc[42], pdf.loc[[42]], scheduler)
    check(df.loc[43], pdf.iloc[:0], scheduler)
    check(df.loc[df.x > 0].loc[10:60], pdf.loc[pdf.x > 0].loc[10:60], scheduler)


def test_numeric_pruning(data):
    df, pdf = frames(data, "i", 6)
    assert df.known_divisions and df.npartitions == 6
    cuts = df._node.divisions
    inner = (cuts[1] + cuts[2]) / 2
    # Within one partition's range: one partition is read.
    one = df.loc[inner:inner + 0.5]
    assert one.npartitions == 1
    assert df.loc[inner].npartitions == 1
    # Crossing one cut: two partitions.
    two = df.loc[cuts[1] - 1:cuts[1] + 1]
    assert two.npartitions == 2
    check(two, pdf.loc[cuts[1] - 1:cuts[1] + 1])
    assert df.loc[cuts[-1] + 1:].npartitions == 1
    assert df.loc[:cuts[0] - 1].npartitions == 1
    assert df.loc[[0, 118]].npartitions == 2
    assert df.loc[0:118].npartitions == 6
    # The graph holds the tasks of the kept partitions only.
    assert len(one.dask) < len(df.dask)
    check(df.loc[inner:inner + 0.5], pdf.loc[inner:inner + 0.5])


def test_persisted_pruning(data, scheduler):
    # A persisted frame keeps its divisions: loc reads only the partitions it needs.
    df, pdf = frames(data, "i", 4)
    held = df.persist(scheduler=scheduler)
    cuts = held._node.divisions
    r = held.loc[cuts[0] + 1:cuts[1] - 1]
    assert r.npartitions == 1 and len(r.dask) < len(held.dask)
    check(r, pdf.loc[cuts[0] + 1:cuts[1] - 1], scheduler)
    check(held.x.loc[[0, 118]], pdf.x.loc[[0, 118]], scheduler)


# ---- string index


def test_string_index(data, scheduler):
    df, pdf = frames(data, "s", 4)
    for key in [slice("key010", "key030"), slice("key0105", "key0305"), slice(None, "key005"),
                slice("key050", None), slice("zzz", None), slice("a", "b")]:
        check(df.loc[key], pdf.loc[key], scheduler)
    check(df.loc["key017"], pdf.loc[["key017"]], scheduler)
    check(df.loc["nokey"], pdf.iloc[:0], scheduler)
    check(df.loc[["key001", "key044"]], pdf.loc[["key001", "key044"]], scheduler)
    check(df.loc["key020":"key040", ["x", "t"]], pdf.loc["key020":"key040", ["x", "t"]],
          scheduler)
    check(df.x.loc["key020":"key025"], pdf.x.loc["key020":"key025"], scheduler)
    with pytest.raises(TypeError, match="slice indexing"):
        df.loc[1:2]


# ---- datetime index


def test_datetime_index(data, scheduler):
    df, pdf = frames(data, "t", 5)
    ts = pd.Timestamp
    for key in [slice("2019-01-05", "2019-01-06"),  # partial strings: whole days
                slice("2019-01-05 10:00:00", "2019-01-07 07:00:00"),
                slice("2019-01", "2019-01"),
                slice("2019-01-03 14", None),
                slice(None, "2019-01-02"),
                slice(ts("2019-01-04 04:00"), ts("2019-01-09 12:30")),
                slice(ts("2019-01-04 04:00").to_pydatetime(), None),
                slice(np.datetime64("2019-01-08T00:00"), np.datetime64("2019-01-10T00:00")),
                slice("2020-01-01", None)]:
        check(df.loc[key], pdf.loc[key], scheduler)
    # A string label selects its period (as pandas and Dask do for a day).
    check(df.loc["2019-01-05"], pdf.loc["2019-01-05":"2019-01-05"], scheduler)
    at = pdf.index[10]
    check(df.loc[at], pdf.loc[[at]], scheduler)
    check(df.loc[at.to_pydatetime()], pdf.loc[[at]], scheduler)
    check(df.loc[at + pd.Timedelta("1h")], pdf.iloc[:0], scheduler)
    lbl = [pdf.index[1], pdf.index[47]]
    check(df.loc[lbl], pdf.loc[lbl], scheduler)
    check(df.loc["2019-01-02":"2019-01-04", "x"], pdf.loc["2019-01-02":"2019-01-04", "x"],
          scheduler)
    check(df.y.loc["2019-01-06"], pdf.y.loc["2019-01-06":"2019-01-06"], scheduler)
    with pytest.raises(TypeError, match="slice indexing"):
        df.loc[1:2]


def test_datetime_pruning(data):
    df, pdf = frames(data, "t", 5)
    assert df.npartitions == 5 and df.known_divisions
    first_day = df.loc["2019-01-01"]
    assert first_day.npartitions == 1
    check(first_day, pdf.loc["2019-01-01":"2019-01-01"])
    last = df.loc[pdf.index[-3]:]
    assert last.npartitions == 1
    check(last, pdf.loc[pdf.index[-3]:])
    assert df.loc[[pdf.index[0], pdf.index[-1]]].npartitions == 2


def test_unknown_divisions_reads_everything(data):
    # from_pandas keeps a non-default index, without divisions: no pruning, same rows.
    pdf = data.set_index("i")
    df = dd.from_pandas(pdf, npartitions=3)
    assert not df.known_divisions
    r = df.loc[10:50]
    assert r.npartitions == 3
    check(r, pdf.loc[10:50])
    check(df.loc[[2, 40]], pdf.loc[[2, 40]])


def test_indexing_docstrings():
    result = doctest.testmod(oxidask.dataframe.indexing, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
