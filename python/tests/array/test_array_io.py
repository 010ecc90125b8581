"""Zarr v3 and .npy on the local filesystem: written by one scheduler, read lazily by
another, values as NumPy wrote them."""

import os

import numpy as np
import pytest

import oxidask.array as da

RNG = np.random.default_rng(5)
A = RNG.normal(size=(13, 9))


@pytest.mark.parametrize("chunks", [(13, 9), (4, 4), ((3, 10), (2, 7))])
def test_zarr_roundtrip(tmp_path, chunks, scheduler):
    path = tmp_path / "a.zarr"
    da.from_array(A, chunks=chunks).to_zarr(path, scheduler=scheduler)
    assert os.path.isdir(path) and not [p for p in os.listdir(tmp_path) if "partial" in p]
    x = da.from_zarr(path)
    assert x.shape == A.shape and x.dtype == np.float64
    np.testing.assert_array_equal(x.compute(scheduler=scheduler), A)
    y = da.from_zarr(path, chunks=(5, 5))
    assert y.chunks == ((5, 5, 3), (5, 4))
    np.testing.assert_allclose(y.sum(axis=0).compute(scheduler=scheduler), A.sum(axis=0))


def test_zarr_dtypes_and_overwrite(tmp_path):
    for dtype in ["float32", "int64", "int32", "uint8", "bool"]:
        data = (A * 10).astype(dtype)
        path = tmp_path / f"{dtype}.zarr"
        da.to_zarr(da.from_array(data, chunks=4), path)
        got = da.from_zarr(path)
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got.compute(), data)
    path = tmp_path / "float32.zarr"
    with pytest.raises(FileExistsError, match="overwrite=True"):
        da.to_zarr(da.ones(3), path)
    da.to_zarr(da.ones(3, chunks=2), path, overwrite=True)
    np.testing.assert_array_equal(da.from_zarr(path).compute(), np.ones(3))


def test_zarr_on_cluster(tmp_path, client):
    path = tmp_path / "c.zarr"
    (da.from_array(A, chunks=(5, 4)) * 2).to_zarr(path)
    np.testing.assert_array_equal(da.from_zarr(path).compute(), A * 2)


def test_zarr_missing_path_is_an_os_error(tmp_path):
    with pytest.raises(OSError, match="nothing"):
        da.from_zarr(tmp_path / "nothing.zarr")


def test_failed_write_leaves_nothing(tmp_path):
    def bad(b):
        raise RuntimeError("block failed")

    x = da.ones((4, 4), chunks=2).map_blocks(bad, dtype=float)
    with pytest.raises(RuntimeError, match="block failed"):
        x.to_zarr(tmp_path / "bad.zarr")
    assert os.listdir(tmp_path) == []
