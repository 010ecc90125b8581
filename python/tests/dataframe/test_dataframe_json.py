"""``read_json`` against pandas' ``read_json`` of the same files: JSON lines in one or many
files (paths, globs, lists, directories), ``blocksize=`` cut at line boundaries, gzip, the
other orients, ``meta=``, and the errors (a malformed line names its file and line)."""

import gzip
import json
import os

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest
from fsspec.utils import read_block

import oxidask.dataframe as dd


def _frame(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=n)
    y[::7] = np.nan
    return pd.DataFrame({
        "id": np.arange(n) + 1000 * seed,
        "name": rng.choice(["ann", "bob", "cé", "dee \"q\""], size=n),
        "y": y,
        "flag": rng.integers(0, 2, size=n).astype(bool),
    })


@pytest.fixture
def jdir(tmp_path):
    """Three JSON-lines files of 40, 75 and 1 rows."""
    frames = [_frame(40, 1), _frame(75, 2), _frame(1, 3)]
    for i, f in enumerate(frames):
        f.to_json(tmp_path / f"part-{i}.json", orient="records", lines=True)
    return tmp_path, frames


def _oracle(paths, **kw):
    return pd.concat([pd.read_json(p, **kw) for p in paths], ignore_index=True)


def test_lines_glob_list_and_directory(jdir, scheduler):
    d, frames = jdir
    files = sorted(str(p) for p in d.glob("*.json"))
    want = _oracle(files, orient="records", lines=True)
    for src in (str(d / "*.json"), files, str(d)):
        df = dd.read_json(src)
        assert df.npartitions == 3
        pdt.assert_frame_equal(df.compute(scheduler=scheduler), want)
    one = dd.read_json(files[1])
    assert one.npartitions == 1
    pdt.assert_frame_equal(one.compute(), pd.read_json(files[1], lines=True))
    # Lazy operations over the read partitions agree with pandas.
    df = dd.read_json(str(d / "*.json"))
    pdt.assert_series_equal(df[df.y > 0].groupby("name").id.sum().compute().sort_index(),
                            want[want.y > 0].groupby("name").id.sum().sort_index())


@pytest.mark.parametrize("blocksize", [50, 333, 1000, "2kB", 10**6])
def test_blocksize_cuts_at_line_boundaries(jdir, blocksize):
    d, frames = jdir
    files = sorted(str(p) for p in d.glob("*.json"))
    df = dd.read_json(files, blocksize=blocksize)
    bs = 2000 if blocksize == "2kB" else blocksize
    # As Dask's read_bytes: max(1, size // blocksize) blocks per file.
    assert df.npartitions == sum(max(1, os.path.getsize(f) // bs) for f in files)
    got = df.compute()
    pdt.assert_frame_equal(got, _oracle(files, lines=True))
    # Every partition holds the lines Dask's block would: fsspec's read_block (what Dask's
    # read_bytes uses) over Dask's offsets is the oracle.
    want = []
    for f in files:
        size = os.path.getsize(f)
        step = size / (size // bs) if size % bs and size > bs else bs
        offs, place = [0], 0
        while size - place > 2 * step - 1:
            place += step
            offs.append(int(place))
        ends = offs[1:] + [size]
        with open(f, "rb") as fh:
            for a, b in zip(offs, ends):
                want.append(read_block(fh, a, b - a, b"\n").count(b"\n"))
    assert [len(p.compute()) for p in df.to_delayed()] == want
    assert sum(want) == 116


def test_gzip_inferred_and_explicit(tmp_path):
    f = _frame(30, 5)
    text = f.to_json(orient="records", lines=True)
    with gzip.open(tmp_path / "a.json.gz", "wt") as fh:
        fh.write(text)
    with gzip.open(tmp_path / "b.jsonl", "wt") as fh:  # no extension to infer from
        fh.write(text)
    pdt.assert_frame_equal(dd.read_json(str(tmp_path / "a.json.gz")).compute(), f)
    got = dd.read_json(str(tmp_path / "b.jsonl"), compression="gzip").compute()
    pdt.assert_frame_equal(got, f)
    with pytest.raises(ValueError, match="compressed"):
        dd.read_json(str(tmp_path / "a.json.gz"), blocksize=100)
    with pytest.raises(ValueError, match="compression"):
        dd.read_json(str(tmp_path / "a.json.gz"), compression="snappy")


@pytest.mark.parametrize("orient", ["records", "split", "columns", "index", "values"])
def test_other_orients_one_partition_per_file(tmp_path, orient):
    frames = [_frame(12, 7), _frame(9, 8)]
    paths = []
    for i, f in enumerate(frames):
        p = tmp_path / f"{orient}-{i}.json"
        f.to_json(p, orient=orient)
        paths.append(str(p))
    df = dd.read_json(paths, orient=orient, lines=False)
    assert df.npartitions == 2
    parts = [pd.read_json(p, orient=orient) for p in paths]
    want = pd.concat(parts)
    got = df.compute()
    if isinstance(parts[0].index, pd.RangeIndex):
        want = want.reset_index(drop=True)
        # oxidask frames name columns with strings ("values" gives 0, 1, ...).
        want.columns = [str(c) for c in want.columns]
    else:
        got.index.name = None
        got.columns = want.columns
    pdt.assert_frame_equal(got, want, check_index_type=False, check_column_type=False)


def test_meta_casts_every_partition(tmp_path):
    (tmp_path / "a.json").write_text('{"a": 1, "b": "x"}\n{"a": 2, "b": "y"}\n')
    (tmp_path / "b.json").write_text('{"a": null, "b": "z"}\n')
    meta = {"a": "float64", "b": "str"}
    got = dd.read_json(str(tmp_path / "*.json"), meta=meta).compute()
    want = pd.DataFrame({"a": [1.0, 2.0, np.nan], "b": ["x", "y", "z"]})
    pdt.assert_frame_equal(got, want)
    # Without meta the first file's int64 cannot hold the missing value: said so.
    with pytest.raises(ValueError, match="meta="):
        dd.read_json(str(tmp_path / "*.json")).compute()


def test_malformed_line_names_file_and_line(tmp_path):
    lines = [json.dumps({"a": i, "b": str(i)}) for i in range(50)]
    lines[37] = '{"a": 37, "b": '
    p = tmp_path / "bad.json"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"bad\.json at line 38"):
        dd.read_json(str(p))
    # In a later block, found when that block is read.
    df = dd.read_json(str(p), blocksize=200)
    assert df.npartitions > 3
    with pytest.raises(ValueError, match=r"bad\.json at line 38"):
        df.compute()


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no files match"):
        dd.read_json(str(tmp_path / "*.json"))
    with pytest.raises(FileNotFoundError, match="no such file"):
        dd.read_json(str(tmp_path / "missing.json"))
    (tmp_path / "a.json").write_text('{"a": 1}\n')
    with pytest.raises(ValueError, match="line-delimited"):
        dd.read_json(str(tmp_path / "a.json"), lines=False, blocksize=10)
    with pytest.raises(ValueError, match="orient"):
        dd.read_json(str(tmp_path / "a.json"), orient="sideways")
    (tmp_path / "b.json").write_text('{"c": 1}\n')
    with pytest.raises(ValueError, match="columns"):
        dd.read_json(str(tmp_path / "*.json")).compute()


def test_on_a_cluster(jdir, client):
    d, frames = jdir
    files = sorted(str(p) for p in d.glob("*.json"))
    df = dd.read_json(str(d / "*.json"), blocksize=400)
    pdt.assert_frame_equal(df.compute(), _oracle(files, lines=True))
    assert df.id.sum().compute() == sum(f.id.sum() for f in frames)


def test_include_path_column(jdir):
    d, frames = jdir
    files = sorted(str(p) for p in d.glob("*.json"))
    got = dd.read_json(files, include_path_column=True, blocksize=500).compute()
    want = pd.concat([pd.read_json(f, lines=True).assign(path=f) for f in files],
                     ignore_index=True)
    want["path"] = want["path"].astype("str")
    pdt.assert_frame_equal(got, want)
    named = dd.read_json(files[0], include_path_column="src",
                         meta={"id": "int64", "name": "str", "y": "float64", "flag": "bool"})
    assert list(named.columns) == ["id", "name", "y", "flag", "src"]
    assert named.src.compute().unique().tolist() == [files[0]]
