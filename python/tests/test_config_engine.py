"""``oxidask.config`` reaches the engine's layered configuration for the keys it reads."""

import os
import subprocess
import sys

import pytest

import oxidask as dask


def test_engine_keys_are_set_for_a_block_and_restored():
    before = dask.config.get("distributed.comm.timeouts.connect")
    with dask.config.set({"distributed.comm.timeouts.connect": "5s"}):
        assert dask.config.get("distributed.comm.timeouts.connect") == "5s"
        assert "5s" in dask.config.render()
    assert dask.config.get("distributed.comm.timeouts.connect") == before
    with dask.config.set(distributed__scheduler__allowed_failures=7):
        assert dask.config.get("distributed.scheduler.allowed-failures") == 7
    assert dask.config.get("distributed.scheduler.allowed-failures") == 3


def test_bad_values_raise_naming_the_key_and_change_nothing():
    with pytest.raises(ValueError, match="distributed.worker.memory.target"):
        dask.config.set({"distributed.worker.memory.target": 1.5, "scheduler": "sync"})
    assert dask.config.get("distributed.worker.memory.target") == 0.6
    assert dask.config.get("scheduler", None) != "sync"
    with pytest.raises(ValueError, match="array.split-every"):
        dask.config.set({"array.split-every": "many"})


def test_the_environment_is_read_as_dask_reads_it(tmp_path):
    (tmp_path / "c.yaml").write_text("array:\n  split-every: 9\n")
    code = (
        "import oxidask as dask;"
        "print(dask.config.get('array.split-every'), dask.config.get('distributed.comm.timeouts.connect'))"
    )
    env = dict(
        os.environ,
        OXIDASK_CONFIG=str(tmp_path / "c.yaml"),
        OXIDASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="45s",
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["9", "45s"]
