"""oxidask.dataframe on a LocalCluster of two worker processes: engine operations, Python
partition functions and persist run on the workers."""

import pandas.testing as pdt

import oxidask
import oxidask.dataframe as dd


def test_compute_on_cluster(client, pdf, tmp_path):
    df = dd.from_pandas(pdf, npartitions=4)
    pdt.assert_frame_equal(df[df.x > 5].compute().reset_index(drop=True),
                           pdf[pdf.x > 5].reset_index(drop=True), check_dtype=False)
    got = df.groupby("k").agg({"x": "sum", "y": "mean"}).compute().sort_index()
    want = pdf.groupby("k").agg({"x": "sum", "y": "mean"})
    pdt.assert_frame_equal(got, want, check_dtype=False)
    assert df.x.sum().compute() == pdf.x.sum()
    m = df.map_partitions(lambda p: p.assign(z=p.x + 1)).z.compute()
    assert m.tolist() == (pdf.x + 1).tolist()
    for i in range(3):
        pdf.iloc[i * 70:(i + 1) * 70].to_parquet(tmp_path / f"p{i}.parquet", index=False)
    r = dd.read_parquet(str(tmp_path / "*.parquet"))
    pdt.assert_series_equal(r.k.value_counts().compute().sort_index(),
                            pdf.k.value_counts().sort_index())


def test_persist_and_compute_many_on_cluster(client, pdf):
    df = dd.from_pandas(pdf, npartitions=3)
    s, m = oxidask.compute(df.x.sum(), df.y.max())
    assert s == pdf.x.sum() and m == pdf.y.max()
    p = df.assign(z=df.x * 2)
    got = p.compute()
    assert got.z.tolist() == (pdf.x * 2).tolist()


def test_persist_on_cluster_keeps_partitions_there(client, pdf):
    df = dd.from_pandas(pdf, npartitions=3)
    p = df[df.x > 10].persist()
    assert p.npartitions == 3
    want = pdf[pdf.x > 10]
    assert p.x.sum().compute() == want.x.sum()
    got = p.groupby("k").x.max().compute().sort_index()
    pdt.assert_series_equal(got, want.groupby("k").x.max())


def test_client_compute_gives_a_future_of_the_pandas_value(client, pdf):
    df = dd.from_pandas(pdf, npartitions=3)
    assert client.compute(df.x.sum()).result() == pdf.x.sum()
    fut = client.compute(df[df.g == 2])
    pdt.assert_frame_equal(fut.result().reset_index(drop=True),
                           pdf[pdf.g == 2].reset_index(drop=True), check_dtype=False)
