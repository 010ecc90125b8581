"""read_parquet / read_csv of ``s3://`` paths against a real S3 endpoint: moto's server on
loopback (from ``$OXIDASK_MOTO_PYTHON`` or ``~/.cache/oxidask-moto-venv``, which ``.ci/run``
installs; failing with the reason when neither has moto). Keys come from the environment of the
process that reads, as on a cluster; keys in ``storage_options`` are refused."""

import io
import os
import socket
import subprocess
import time
import urllib.request

import pandas as pd
import pandas.testing as pdt
import pytest

import oxidask.dataframe as dd


def _moto_python():
    p = os.environ.get("OXIDASK_MOTO_PYTHON") or os.path.expanduser(
        "~/.cache/oxidask-moto-venv/bin/python")
    if not os.path.exists(p):
        return None
    ok = subprocess.run([p, "-c", "import moto.server"], capture_output=True).returncode == 0
    return p if ok else None


@pytest.fixture(scope="module")
def moto():
    py = _moto_python()
    if py is None:
        pytest.fail("moto's S3 server is not installed (set OXIDASK_MOTO_PYTHON)")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.Popen([py, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, "moto's server exited"
                assert time.monotonic() < deadline, "moto did not start within 60 s"
                time.sleep(0.1)
        url = f"http://127.0.0.1:{port}"
        _put(url, "trips")
        yield url
    finally:
        proc.kill()
        proc.wait()


def _put(url, path, data=b""):
    req = urllib.request.Request(f"{url}/{path}", data=data, method="PUT",
                                 headers={"Connection": "close",
                                          "Content-Length": str(len(data)),
                                          "Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(req, timeout=30) as r:
        r.read()


def test_read_parquet_and_csv_from_s3(moto, pdf, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDOXIDASKPYTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "oxidask-py-test-secret")
    parts = [pdf.iloc[:80], pdf.iloc[80:150], pdf.iloc[150:]]
    for i, p in enumerate(parts):
        buf = io.BytesIO()
        p.to_parquet(buf, index=False)
        _put(moto, f"trips/pq/part-{i}.parquet", buf.getvalue())
        _put(moto, f"trips/csv/part-{i}.csv", p.drop(columns=["t"]).to_csv(index=False).encode())
    so = {"endpoint_url": moto, "region": "us-east-1"}
    df = dd.read_parquet("s3://trips/pq/*.parquet", storage_options=so)
    assert df.npartitions == 3
    pdt.assert_frame_equal(df.compute(), pdf, check_dtype=False)
    pdt.assert_series_equal(df.k.value_counts().compute().sort_index(),
                            pdf.k.value_counts().sort_index())
    c = dd.read_csv("s3://trips/csv/*.csv", storage_options=so)
    pdt.assert_frame_equal(c.compute(), pdf.drop(columns=["t"]), check_dtype=False)


def test_keys_in_storage_options_are_refused():
    with pytest.raises(ValueError, match="environment"):
        dd.read_parquet("s3://trips/x.parquet",
                        storage_options={"key": "a", "secret": "b", "endpoint_url": "http://x"})


def test_read_json_from_s3(moto, monkeypatch, tmp_path):
    """JSON lines (plain, in blocks, gzip) from ``s3://`` globs, read by pyarrow's S3
    filesystem in the tasks; compared with pandas reading the same bytes."""
    import gzip

    import numpy as np

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDOXIDASKPYTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "oxidask-py-test-secret")
    rng = np.random.default_rng(3)
    frames = [pd.DataFrame({"i": np.arange(n) + 100 * j, "s": rng.choice(["a", "bb", "ccc"], n),
                            "v": rng.normal(size=n)})
              for j, n in enumerate([60, 25, 90])]
    texts = [f.to_json(orient="records", lines=True).encode() for f in frames]
    for i, t in enumerate(texts):
        _put(moto, f"trips/json/part-{i}.json", t)
        _put(moto, f"trips/jsongz/part-{i}.json.gz", gzip.compress(t))
    want = pd.concat([pd.read_json(io.BytesIO(t), lines=True) for t in texts], ignore_index=True)
    so = {"endpoint_url": moto, "region": "us-east-1"}
    df = dd.read_json("s3://trips/json/*.json", storage_options=so)
    assert df.npartitions == 3
    pdt.assert_frame_equal(df.compute(), want)
    blocks = dd.read_json("s3://trips/json/*.json", blocksize=700, storage_options=so)
    assert blocks.npartitions == sum(max(1, len(t) // 700) for t in texts)
    pdt.assert_frame_equal(blocks.compute(scheduler="threads"), want)
    gz = dd.read_json(["s3://trips/jsongz/part-0.json.gz", "s3://trips/jsongz/part-1.json.gz",
                       "s3://trips/jsongz/part-2.json.gz"], storage_options=so)
    pdt.assert_frame_equal(gz.compute(), want)
    pdt.assert_series_equal(gz.groupby("s").v.mean().compute().sort_index(),
                            want.groupby("s").v.mean().sort_index())
    with pytest.raises(FileNotFoundError, match="no files match"):
        dd.read_json("s3://trips/nothing/*.json", storage_options=so)
