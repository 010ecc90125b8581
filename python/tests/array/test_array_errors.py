"""Bad input raises what NumPy and Dask raise, naming what is wrong."""

import numpy as np
import pytest

import oxidask.array as da


def test_broadcast_mismatch_names_shapes():
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5,\)"):
        da.ones((3, 4)) + da.ones(5)
    with pytest.raises(ValueError, match="broadcast"):
        da.where(da.ones(3) > 0, da.ones(4), 0)


def test_unsupported_dtypes_are_type_errors():
    with pytest.raises(TypeError, match="float16"):
        da.ones(3, dtype=np.float16)
    with pytest.raises(TypeError, match="complex"):
        da.ones(3).astype(complex)
    with pytest.raises(TypeError):
        -(da.ones(3) > 0)  # NumPy: boolean negative is not supported
    with pytest.raises(TypeError, match="same_kind"):
        da.ones(3).astype(int, casting="same_kind")


def test_index_errors():
    x = da.ones((5, 6), chunks=2)
    with pytest.raises(IndexError, match="out of bounds for axis 0 with size 5"):
        x[5]
    with pytest.raises(IndexError, match="out of bounds"):
        x[:, -7]
    with pytest.raises(IndexError, match="too many indices"):
        x[1, 2, 3]
    with pytest.raises(IndexError, match="out of bounds"):
        x[[0, 9]]
    with pytest.raises(IndexError, match="boolean index did not match"):
        x[da.ones(4, chunks=2) > 0]
    with pytest.raises(IndexError, match="out of bounds"):
        x[7] = 1  # assignment checks its index as NumPy does
    with pytest.raises(IndexError, match="None"):
        x[None, 0] = 1


def test_axis_errors():
    x = da.ones((3, 4))
    with pytest.raises(np.exceptions.AxisError):
        x.sum(axis=2)
    with pytest.raises(ValueError):  # AxisError is a ValueError too, as in NumPy
        x.mean(axis=-3)


def test_shape_errors():
    x = da.ones((3, 4), chunks=2)
    with pytest.raises(ValueError, match="cannot reshape array of size 12 into shape"):
        x.reshape(5, 3)
    with pytest.raises(ValueError, match="must match"):
        da.concatenate([x, da.ones((3, 5))], axis=0)
    with pytest.raises(ValueError, match="same shape"):
        da.stack([x, da.ones((4, 3))])
    with pytest.raises(ValueError, match="mismatch"):
        x @ da.ones((3, 3))
    with pytest.raises(ValueError, match="do not add up"):
        x.rechunk(((1, 1), (4,)))
    with pytest.raises(ValueError, match="negative dimensions"):
        da.zeros((-1, 3))


def test_unknown_chunks_refuse_shape_dependent_operations():
    x = da.arange(10, chunks=3)
    y = x[x > 4]
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        y.rechunk(2)
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        y[1:3]
    with pytest.raises(ValueError, match="unknown length"):
        len(y)


def test_truth_value_of_arrays():
    with pytest.raises(ValueError, match="ambiguous"):
        bool(da.ones(3) > 0)
    assert bool(da.ones(1) > 0)


def test_task_failure_is_the_functions_exception(scheduler):
    def bad(b):
        raise ZeroDivisionError("in a block")

    with pytest.raises(ZeroDivisionError, match="in a block"):
        da.ones(4, chunks=2).map_blocks(bad, dtype=float).compute(scheduler=scheduler)


def test_pickling_an_array_says_what_to_do():
    import pickle

    with pytest.raises(TypeError, match="compute it"):
        pickle.dumps(da.ones(3))
