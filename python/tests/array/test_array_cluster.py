"""oxidask.array on a LocalCluster of two worker processes (and the processes scheduler): a
representative subset of the operations, checked against NumPy. Rust kernels run on the
stock workers; blocks come back as NumPy arrays; Python functions of map_blocks run there too.
"""

import numpy as np
import pytest

import oxidask
import oxidask.array as da

RNG = np.random.default_rng(7)
A = RNG.normal(size=(40, 30))
B = RNG.normal(size=(30, 20))


def test_elementwise_reductions_linalg_on_cluster(client):
    x = da.from_array(A, chunks=(10, 7))
    y = da.from_array(B, chunks=(7, 5))
    np.testing.assert_allclose((x @ y).compute(), A @ B)
    np.testing.assert_allclose(np.sqrt(abs(x) + 1).sum(axis=0).compute(),
                               np.sqrt(np.abs(A) + 1).sum(axis=0))
    np.testing.assert_allclose(x.std(axis=1, ddof=1).compute(), A.std(axis=1, ddof=1))
    np.testing.assert_allclose(x.T[::-1, 3:9].compute(), A.T[::-1, 3:9])
    s, m = oxidask.compute(x.sum(), x.max(axis=0))
    np.testing.assert_allclose(s, A.sum())
    np.testing.assert_allclose(m, A.max(axis=0))


def test_creation_mask_and_rechunk_on_cluster(client):
    x = da.random.RandomState(3).normal(0, 1, size=(300, 200), chunks=(70, 60))
    local = x.compute(scheduler="sync")
    np.testing.assert_array_equal(x.compute(), local)
    pos = x[x > 1]
    np.testing.assert_array_equal(pos.compute(), local[local > 1])
    pos.compute_chunk_sizes()
    assert pos.shape == (int((local > 1).sum()),)
    np.testing.assert_array_equal(x.rechunk((150, 200)).compute(), local)
    np.testing.assert_allclose(x.reshape(600, 100).mean(axis=0).compute(),
                               local.reshape(600, 100).mean(axis=0))


def test_map_blocks_and_overlap_run_python_on_workers(client):
    x = da.from_array(A, chunks=(10, 10))
    np.testing.assert_allclose(x.map_blocks(np.cos).compute(), np.cos(A))
    got = x.map_overlap(lambda b: b * 2, depth=2, boundary="reflect").compute()
    np.testing.assert_allclose(got, A * 2)


def test_python_blocks_move_between_workers(client):
    # Blocks made by Python functions are read by Rust tasks on other workers: the matrix
    # product combines blocks of every row and column, so they travel (as engine blocks).
    x = da.from_array(A, chunks=(5, 5))
    z = x.map_blocks(lambda b: b * 2.0)
    for _ in range(3):
        np.testing.assert_allclose((z.T @ z).compute(), (2 * A).T @ (2 * A))
        np.testing.assert_allclose(z.sum(axis=0).compute(), (2 * A).sum(axis=0))


def test_persist_on_cluster_keeps_results_there(client):
    x = da.from_array(A, chunks=(10, 10))
    p = (x + 1).persist()
    np.testing.assert_allclose(p.sum().compute(), (A + 1).sum())
    np.testing.assert_allclose((p * 2).compute(), (A + 1) * 2)


def test_failure_surfaces_as_the_users_exception(client):
    x = da.ones((4, 4), chunks=2)

    def boom(b):
        raise KeyError("no such block")

    with pytest.raises(KeyError, match="no such block"):
        x.map_blocks(boom, dtype=float).compute()
    # The cluster keeps serving.
    assert x.sum().compute() == 16.0


def test_processes_scheduler():
    x = da.from_array(A, chunks=(10, 10))
    np.testing.assert_allclose((x * 2).sum(axis=1).compute(scheduler="processes"),
                               (A * 2).sum(axis=1))
    np.testing.assert_allclose(x.map_blocks(np.exp).compute(scheduler="processes"), np.exp(A))
