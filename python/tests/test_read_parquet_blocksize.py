"""``read_parquet`` partitions as Dask's: ``split_row_groups`` ("infer", "adaptive", bool, int)
and ``blocksize`` over files with many small row groups. The oracle is real Dask
(``dask.dataframe.read_parquet(...).npartitions`` on the same files and arguments; Dask is in
``requirements-test.txt``)."""

import dask.dataframe as ddask
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import oxidask.dataframe as dd


def _dask_npartitions(cases):
    """Dask's ``npartitions`` for each ``(path, split_row_groups, blocksize)``."""
    return [ddask.read_parquet(p, split_row_groups=s, blocksize=b).npartitions
            for p, s, b in cases]


def _frame(n, seed):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "id": np.arange(n, dtype="int64") + seed * 1_000_000,
        "x": rng.normal(size=n),
        "s": [f"w{v}" for v in rng.integers(0, 1000, n)],
    })


def _write(path, n, seed, row_group_size):
    df = _frame(n, seed)
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path,
                   row_group_size=row_group_size)
    return df


def _row_group_bytes(path):
    md = pq.ParquetFile(path).metadata
    return [md.row_group(i).total_byte_size for i in range(md.num_row_groups)]


def test_npartitions_equal_dask_for_split_row_groups_and_blocksize(tmp_path):
    big = str(tmp_path / "big.parquet")
    data = _write(big, 20_000, 1, 1000)
    sizes = _row_group_bytes(big)
    total = sum(sizes)
    assert len(sizes) == 20
    cases = [
        (big, "infer", "default"),  # 256 MiB: one partition
        (big, "infer", total // 5),
        (big, "infer", total // 2),  # just over 2 x blocksize: splits in 3
        (big, "infer", total // 2 + 1),  # not over 2 x blocksize: one partition
        (big, "infer", sizes[0] - 1),  # every row group alone
        (big, "infer", f"{total // 3000} kB"),
        (big, "infer", None),
        (big, "infer", 0),
        (big, "adaptive", total // 7),
        (big, "adaptive", "default"),
        (big, "adaptive", None),
        (big, True, "default"),
        (big, True, total // 4),
        (big, False, total // 4),
        (big, 3, total // 4),
        (big, 7, "default"),
        (big, 0, "default"),
    ]
    want = _dask_npartitions(cases)
    got = []
    for path, split, blocksize in cases:
        df = dd.read_parquet(path, split_row_groups=split, blocksize=blocksize)
        got.append(df.npartitions)
        if df.npartitions > 1:
            pd.testing.assert_frame_equal(df.compute().reset_index(drop=True), data)
    assert got == want, list(zip(cases, got, want))
    assert len(set(want)) >= 5  # the cases mean something


def test_a_directory_splits_each_file_from_the_first_files_sizes(tmp_path):
    # The first file decides; files are never merged.
    d = tmp_path / "dir"
    d.mkdir()
    frames = [_write(str(d / f"part-{i}.parquet"), n, i, 500) for i, n in enumerate([8000, 1500, 5000])]
    first = sum(_row_group_bytes(str(d / "part-0.parquet")))
    small_first = tmp_path / "small-first"
    small_first.mkdir()
    _write(str(small_first / "a.parquet"), 1500, 5, 500)
    _write(str(small_first / "b.parquet"), 8000, 6, 500)
    cases = [(str(d), "infer", first // 4), (str(d), "infer", "default"),
             (str(small_first), "infer", first // 4)]
    want = _dask_npartitions(cases)
    got = [dd.read_parquet(p, split_row_groups=s, blocksize=b).npartitions for p, s, b in cases]
    assert got == want
    assert want[0] > 3 and want[2] == 2
    whole = dd.read_parquet(str(d), blocksize=first // 4).compute().reset_index(drop=True)
    pd.testing.assert_frame_equal(whole, pd.concat(frames, ignore_index=True))
    # A filter on the split read keeps the right rows.
    sel = dd.read_parquet(str(d), blocksize=first // 4)
    got = sel[sel.id < 3000].compute().reset_index(drop=True)
    pd.testing.assert_frame_equal(got, frames[0][frames[0].id < 3000].reset_index(drop=True))


@pytest.mark.parametrize("split, blocksize, error", [
    ("foo", "default", ValueError),
    ("infer", "abc", ValueError),
    ("infer", "12 parsecs", ValueError),
    ("infer", -5, ValueError),
    (-1, "default", ValueError),
    (None, "default", TypeError),
    (1.5, "default", TypeError),
    ("infer", [1], TypeError),
])
def test_bad_split_row_groups_or_blocksize_raise_as_dask(tmp_path, split, blocksize, error):
    path = str(tmp_path / "f.parquet")
    _write(path, 100, 0, 10)
    with pytest.raises(error, match="split_row_groups|blocksize|size|unit"):
        dd.read_parquet(path, split_row_groups=split, blocksize=blocksize)
