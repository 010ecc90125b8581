"""The Python examples run as they are (each is also the README's demo)."""

import os
import subprocess
import sys

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python")


def _run(example, cwd):
    """Runs ``examples/python/<example>`` in ``cwd`` (so nothing is written next to the
    sources); returns what it printed, failing with its stderr if it failed."""
    out = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, example)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_tutorial_runs_and_its_results_are_right(tmp_path):
    lines = _run("tutorial.py", tmp_path)
    assert "z.compute() on the threaded scheduler" in lines and " 5 " in lines
    assert "sum of the loop (persisted)" in lines
    assert "submit(sum, futures): futures as arguments" in lines and "210" in lines
    assert "[-1, 0, 1, 2, 3]" in lines
    assert list(tmp_path.iterdir()) == []


def test_secure_cluster_computes_over_tls_and_refuses_strangers(tmp_path):
    lines = _run("secure_cluster.py", tmp_path)
    assert "scheduler at tls://" in lines
    assert "sum of squares over TLS: 328350" in lines
    assert "no credentials: refused" in lines and "no TLS credentials" in lines
    assert "another CA: refused" in lines and "TLS handshake" in lines
    assert "wrong token: refused" in lines and "refused the authentication token" in lines
    assert list(tmp_path.iterdir()) == []


def test_bag_word_count_matches_counter(tmp_path):
    lines = _run("bag_word_count.py", tmp_path)
    assert "threaded scheduler: matches collections.Counter" in lines
    assert "LocalCluster (2 worker processes): matches collections.Counter" in lines
    assert list(tmp_path.iterdir()) == []


def test_coordination_example_tasks_share_a_queue_lock_and_variable(tmp_path):
    lines = _run("coordination.py", tmp_path)
    assert "jobs produced: 100" in lines
    assert "total 100" in lines
    assert "sum of squares under the lock: 328350" in lines
    assert "another client reads the dataset: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]" in lines
    assert "datasets: ['squares']" in lines
    assert list(tmp_path.iterdir()) == []


def test_array_tutorial_matches_numpy(tmp_path):
    lines = _run("array_tutorial.py", tmp_path)
    assert "dask.array<ones, shape=(1000, 4000), dtype=float64, chunksize=(1000, 1000)" in lines
    assert "fancy_calculation: 1.0" in lines
    assert "shape=(nan,)" in lines
    assert "threaded scheduler: mean/std/mask/map_blocks/matmul match NumPy" in lines
    assert "LocalCluster (2 worker processes): mean/std/mask/map_blocks/matmul match NumPy" in lines
    assert list(tmp_path.iterdir()) == []


def test_actor_counter_example_calls_in_order_from_client_and_tasks(tmp_path):
    lines = _run("actor_counter.py", tmp_path)
    assert "<Actor: Counter, key=Counter-" in lines
    assert "answered in order: last 100, counter.n = 100" in lines
    assert "20 tasks called it too: counter.n = 310" in lines
    assert "withdrawal of 100 refused: Please deposit more money first." in lines
    assert "deposit 100: balance 142.0" in lines and "withdrawal 100: balance 42.0" in lines
    assert "2000 sequential calls: p50" in lines
    assert list(tmp_path.iterdir()) == []


def test_dataframe_taxi_example_matches_pandas(tmp_path):
    lines = _run("dataframe_taxi.py", tmp_path)
    assert "Dask DataFrame Structure:" in lines and "npartitions=12" in lines
    assert "Name: count, dtype: int64" in lines
    assert "threaded scheduler: value_counts, filter/assign/groupby and dt.hour match pandas" in lines
    assert "LocalCluster (2 worker processes): value_counts, filter/assign/groupby and dt.hour match pandas" in lines
    assert list(tmp_path.iterdir()) == []


def test_gateway_example_scales_a_users_cluster_and_keeps_others_out(tmp_path):
    lines = _run("gateway_cluster.py", tmp_path)
    assert "sum of squares: 20540" in lines
    peak = int(lines.split("workers asked for at the peak: ")[1].split()[0])
    assert 2 <= peak <= 3  # 8 s of work over a 5 s target, at most the adapt maximum
    assert "bob sees 0 clusters" in lines and "bob cannot connect: not found" in lines
    assert "alice's clusters after shutdown: 0" in lines
    assert list(tmp_path.iterdir()) == []
