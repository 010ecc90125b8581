"""The dataframe features chapter 4 of "Scaling Python with Dask" reaches for, against pandas:
``dd.Aggregation``, grouping by a function of the index, HyperLogLog states, ``map_overlap``
and ``rolling`` windows, ``set_index`` with datetime divisions, ``repartition`` by size or
divisions, ``read_parquet(split_row_groups=)`` and SQL through SQLAlchemy."""

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import oxidask.dataframe as dd
from oxidask.dataframe import hyperloglog

PARTS = [1, 3, 7]


@pytest.fixture
def pay():
    rng = np.random.default_rng(11)
    n = 240
    return pd.DataFrame(
        {
            "PostCode": rng.choice(["AB1", "CD2", "EF3", "GH4", "IJ5"], size=n),
            "EmployerSize": rng.integers(1, 500, size=n).astype("float64"),
            "DiffMeanHourlyPercent": rng.normal(10, 5, size=n),
            "Count": rng.integers(0, 9, size=n),
        }
    )


custom_mean = dd.Aggregation(
    "custom_mean",
    lambda s: (s.count(), s.sum()),
    lambda count, total: (count.sum(), total.sum()),
    lambda count, total: total / count,
)


@pytest.mark.parametrize("n", PARTS)
def test_aggregation_frame_series_list_dict(pay, n):
    df = dd.from_pandas(pay, npartitions=n)
    want = pay.groupby("PostCode")
    pdt.assert_frame_equal(df.groupby("PostCode").agg(custom_mean).compute(), want.mean())
    pdt.assert_series_equal(
        df.groupby("PostCode").EmployerSize.agg(custom_mean).compute(), want.EmployerSize.mean()
    )
    got = df.groupby("PostCode").agg({"EmployerSize": [custom_mean, "sum"], "Count": "max"})
    exp = want.agg({"EmployerSize": ["mean", "sum"], "Count": "max"})
    exp.columns = pd.MultiIndex.from_tuples(
        [("EmployerSize", "custom_mean"), ("EmployerSize", "sum"), ("Count", "max")]
    )
    pdt.assert_frame_equal(got.compute(), exp, check_dtype=False)
    got = df.groupby("PostCode")[["Count"]].agg([custom_mean, "min"]).compute()
    assert list(got.columns) == [("Count", "custom_mean"), ("Count", "min")]
    np.testing.assert_allclose(got[("Count", "custom_mean")], want.Count.mean())


def test_aggregation_tree_runs_agg_more_than_once(pay):
    # split_every=2 over 7 partitions: agg must combine its own outputs (associative).
    df = dd.from_pandas(pay, npartitions=7)
    spread = dd.Aggregation(
        "spread",
        lambda s: (s.min(), s.max()),
        lambda lo, hi: (lo.min(), hi.max()),
        lambda lo, hi: hi - lo,
    )
    got = df.groupby("PostCode").Count.agg(spread, split_every=2).compute()
    want = pay.groupby("PostCode").Count.agg(lambda s: s.max() - s.min())
    pdt.assert_series_equal(got, want, check_names=False, check_dtype=False)


def test_aggregation_errors(pay):
    with pytest.raises(TypeError, match="callable"):
        dd.Aggregation("bad", 1, 2)
    df = dd.from_pandas(pay, npartitions=2)
    broken = dd.Aggregation("broken", lambda s: s.no_such_method(), lambda s: s.sum())
    with pytest.raises(ValueError, match="chunk, agg and finalize"):
        df.groupby("PostCode").agg(broken)
    with pytest.raises(KeyError):
        df.groupby("PostCode").agg({"nope": custom_mean})


@pytest.mark.parametrize("n", PARTS)
def test_groupby_function_of_the_index(pay, n):
    indexed = pay.set_index(pd.Index(np.arange(len(pay)) * 3, name="row"))
    df = dd.from_pandas(indexed, npartitions=n)
    pdt.assert_series_equal(
        df.groupby(lambda x: 0).Count.sum().compute(),
        indexed.groupby(lambda x: 0).Count.sum(),
    )
    pdt.assert_frame_equal(
        df.groupby(lambda i: i % 2)[["Count", "EmployerSize"]].max().compute(),
        indexed.groupby(lambda i: i % 2)[["Count", "EmployerSize"]].max(),
        check_dtype=False,
    )


@pytest.mark.parametrize("n", PARTS)
def test_hyperloglog_as_an_aggregation_and_merging_states(n):
    rng = np.random.default_rng(5)
    values = pd.Series(rng.integers(0, 30_000, size=60_000))
    states = [hyperloglog.compute_hll_array(values.iloc[i::n], 12) for i in range(n)]
    estimate = hyperloglog.estimate_count(np.concatenate(states), 12)
    exact = values.nunique()
    # 2**12 registers: standard error 1.04/64 ~ 1.6%; five of them is far beyond chance.
    assert abs(estimate - exact) < 0.08 * exact
    assert hyperloglog.reduce_state(np.concatenate(states), 12).shape == (4096,)
    with pytest.raises(ValueError, match="b must be"):
        hyperloglog.compute_hll_array(values, 40)
    with pytest.raises(TypeError):
        hyperloglog.compute_hll_array([1, 2], 12)


@pytest.fixture
def daily():
    rng = np.random.default_rng(2)
    idx = pd.date_range("2021-01-01", periods=90, freq="19h", name="t")
    return pd.DataFrame({"x": rng.random(90), "y": rng.integers(0, 9, 90)}, index=idx)


@pytest.mark.parametrize("n", PARTS)
def test_rolling_time_and_row_windows(daily, n):
    df = dd.from_pandas(daily, npartitions=n)
    pdt.assert_frame_equal(df.rolling("2D").mean().compute(), daily.rolling("2D").mean(),
                           check_freq=False)
    pdt.assert_frame_equal(df.rolling(4).sum().compute(), daily.rolling(4).sum(),
                           check_freq=False)
    pdt.assert_series_equal(df.x.rolling(3, center=True).max().compute(),
                            daily.x.rolling(3, center=True).max(), check_freq=False)
    pdt.assert_series_equal(df.rolling("3D").y.count().compute(),
                            daily.rolling("3D").y.count(), check_freq=False)


@pytest.mark.parametrize("n", PARTS)
def test_map_overlap_borrows_from_both_neighbours(daily, n):
    df = dd.from_pandas(daily, npartitions=n)

    def centred(d):
        return d.rolling(5, center=True).mean()

    pdt.assert_frame_equal(df.map_overlap(centred, 2, 2).compute(), centred(daily),
                           check_freq=False)
    got = df.map_overlap(lambda d: d.rolling("5D").sum(), pd.Timedelta("5D"), 0).compute()
    pdt.assert_frame_equal(got, daily.rolling("5D").sum(), check_freq=False)


def test_map_overlap_errors(daily):
    df = dd.from_pandas(daily, npartitions=30)
    with pytest.raises(NotImplementedError, match="repartition"):
        df.rolling(10).sum().compute()
    flat = dd.from_pandas(daily.reset_index(drop=True), npartitions=2)
    with pytest.raises(TypeError, match="datetime index"):
        flat.rolling("2D").sum()
    with pytest.raises(TypeError, match="non-negative"):
        df.map_overlap(lambda d: d, -1, 0)
    with pytest.raises(ValueError, match="window"):
        df.rolling("not a window")


def test_set_index_with_datetime_divisions_and_repartition_divisions(daily):
    flat = daily.reset_index().sample(frac=1, random_state=3)
    df = dd.from_pandas(flat, npartitions=4)
    divisions = list(pd.date_range("2021-01-01", "2021-04-01", freq="7D"))
    out = df.set_index("t", divisions=divisions)
    assert out.npartitions == len(divisions) - 1
    got = out.compute()
    pdt.assert_frame_equal(got, daily, check_freq=False)
    for i in range(3):
        part = out.get_partition(i).compute()
        assert part.index.min() >= divisions[i] and part.index.max() < divisions[i + 1]
    again = out.repartition(divisions=divisions[::2])
    assert again.npartitions == len(divisions[::2]) - 1
    pdt.assert_frame_equal(again.compute(), daily, check_freq=False)
    with pytest.raises(TypeError, match="timestamps"):
        df.set_index("t", divisions=["a", "b"])
    with pytest.raises(ValueError, match="sorted"):
        df.set_index("t", divisions=divisions[::-1])


@pytest.mark.parametrize("n", PARTS)
def test_repartition_by_size(n):
    pdf = pd.DataFrame({"x": np.arange(20_000), "s": [f"v{i}" for i in range(20_000)]})
    df = dd.from_pandas(pdf, npartitions=n)
    total = pdf.memory_usage(deep=True).sum()
    target = total // 5
    out = df.repartition(partition_size=int(target))
    sizes = [out.get_partition(i).compute().memory_usage(deep=True).sum()
             for i in range(out.npartitions)]
    assert out.npartitions >= 5
    # Every partition within the target (pieces are equal row ranges of measured sizes).
    assert max(sizes) <= target * 1.05
    pdt.assert_frame_equal(out.compute().reset_index(drop=True), pdf)
    with pytest.raises(ValueError, match="one of"):
        df.repartition(npartitions=2, partition_size="1MB")


def test_read_parquet_split_row_groups(tmp_path):
    pdf = pd.DataFrame({"x": np.arange(1000), "y": np.arange(1000) * 0.5})
    for i in range(2):
        pq.write_table(pa.Table.from_pandas(pdf.iloc[i * 500:(i + 1) * 500], preserve_index=False),
                       tmp_path / f"part-{i}.parquet", row_group_size=100)
    whole = dd.read_parquet(str(tmp_path))
    assert whole.npartitions == 2
    split = dd.read_parquet(str(tmp_path), split_row_groups=2)
    assert split.npartitions == 6  # 5 row groups per file, 2 per partition: 3 + 3
    pdt.assert_frame_equal(split.compute(), pdf)
    assert dd.read_parquet(str(tmp_path), split_row_groups=True).npartitions == 10
    with pytest.raises(ValueError, match="split_row_groups"):
        dd.read_parquet(str(tmp_path), split_row_groups=-1)


@pytest.fixture
def school(tmp_path):
    rng = np.random.default_rng(4)
    pdf = pd.DataFrame(
        {
            "student_number": np.arange(300),
            "grade": rng.random(300).round(3),
            "name": [f"s{i}" for i in range(300)],
        }
    )
    uri = f"sqlite:///{tmp_path / 'school.db'}"
    assert dd.from_pandas(pdf, npartitions=3).to_sql("transcripts", uri, index=False) == 300
    return pdf, uri


@pytest.mark.parametrize("n", [1, 4])
def test_read_sql_query_and_table(school, n):
    from sqlalchemy import sql

    pdf, uri = school
    want = pdf.set_index("student_number")
    sel = sql.select(sql.column("student_number"), sql.column("grade")).select_from(
        sql.table("transcripts"))
    ddf = dd.read_sql_query(sel, npartitions=n, index_col="student_number", con=uri)
    assert ddf.npartitions == n
    pdt.assert_frame_equal(ddf.compute(), want[["grade"]])
    t = dd.read_sql_table("transcripts", uri, index_col="student_number", npartitions=n,
                          columns=["name"])
    pdt.assert_frame_equal(t.compute(), want[["name"]])
    assert dd.read_sql("transcripts", uri, "student_number").grade.sum().compute() == \
        pytest.approx(pdf.grade.sum())


def test_sql_errors(school):
    pdf, uri = school
    with pytest.raises(KeyError, match="nope"):
        dd.read_sql_table("nope", uri, index_col="x")
    with pytest.raises(KeyError, match="missing_col"):
        dd.read_sql_table("transcripts", uri, index_col="missing_col")
    with pytest.raises(TypeError, match="URI"):
        dd.read_sql_table("transcripts", object(), index_col="student_number")
    with pytest.raises(TypeError, match="Select"):
        dd.read_sql_query("select * from transcripts", uri, index_col="student_number")
    with pytest.raises(ValueError):  # the table exists: pandas refuses with if_exists="fail"
        dd.from_pandas(pdf, npartitions=1).to_sql("transcripts", uri, index=False)
