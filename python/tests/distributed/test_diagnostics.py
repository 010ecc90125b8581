"""Watching a cluster from Python, as ``dask.distributed`` users do: the dashboard link,
``get_task_stream`` (the context manager and the client method), ``performance_report``,
``MemorySampler`` and the scheduler's and workers' logs.

One ``LocalCluster`` of two worker processes (one thread each) with its dashboard on a free
loopback port serves the module.
"""

import datetime
import json
import re
import time
import urllib.request

import numpy as np
import pandas as pd
import pytest

from oxidask.distributed import (
    Client,
    LocalCluster,
    MemorySampler,
    get_task_stream,
    performance_report,
)


def slow_inc(x, seconds=0.02):
    time.sleep(seconds)
    return x + 1


def explode(x):
    return x / 0


def total(xs):
    return sum(xs)


def block(i, mib):
    return np.full(mib * 2**17, i, dtype=np.float64)  # mib MiB


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address="127.0.0.1:0")
    c = Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def fetch(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.read().decode()


def test_the_dashboard_link_leads_to_the_live_dashboard(client):
    link = client.dashboard_link
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/status", link), link
    assert client.cluster.dashboard_link == link
    status, page = fetch(link)
    assert status == 200 and 'data-page="status"' in page
    # Its metrics count this cluster's two workers (once the first snapshot is out).
    def workers():
        _, metrics = fetch(link.replace("/status", "/metrics"))
        pattern = r'^dask_scheduler_workers\{state="[a-z_]+"\} (\S+)$'
        return sum(float(m.group(1)) for m in re.finditer(pattern, metrics, re.M))

    deadline = time.monotonic() + 10
    while workers() != 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert workers() == 2


def test_a_cluster_without_a_dashboard_has_no_link():
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        with Client(cluster, set_as_default=False) as c:
            assert cluster.dashboard_link is None
            assert c.dashboard_link is None


def test_get_task_stream_holds_the_block_only_in_dasks_shape(client):
    client.gather(client.map(slow_inc, range(5), pure=False))  # before: not recorded
    with get_task_stream() as ts:
        futures = client.map(slow_inc, range(10), pure=False)
        assert client.submit(total, futures).result() == sum(range(1, 11))
    computes = [r for r in ts.data if r["startstops"][0]["action"] == "compute"]
    assert sorted(r["prefix"] for r in computes) == ["slow_inc"] * 10 + ["total"]
    assert {f.key for f in futures} <= {r["key"] for r in computes}
    addresses = set(client.scheduler_info()["workers"])
    for r in ts.data:
        assert set(r) >= {"key", "worker", "status", "nbytes", "thread", "startstops"}
        assert r["worker"] in addresses and r["status"] == "OK"
        (ss,) = r["startstops"]
        assert ss["start"] <= ss["stop"] and ss["stop"] - ss["start"] < 60
    for r in computes:
        if r["prefix"] == "slow_inc":
            ss = r["startstops"][0]
            assert ss["stop"] - ss["start"] >= 0.02
    # The total needed the results of the other worker: moved there before it ran.
    transfers = [r for r in ts.data if r["startstops"][0]["action"] == "transfer"]
    assert transfers and all(r["nbytes"] > 0 for r in transfers)
    assert ts.figure is None


def test_client_get_task_stream_filters_by_time_and_count(client):
    before = datetime.datetime.now()
    client.gather(client.map(slow_inc, range(6), pure=False))
    recent = client.get_task_stream(start=before)
    assert len([r for r in recent if r["prefix"] == "slow_inc"]) == 6
    assert len(client.get_task_stream(count=3)) == 3
    assert client.get_task_stream(stop=before.timestamp() - 3600) == []
    with pytest.raises(TypeError):
        client.get_task_stream(start="yesterday")


def test_task_stream_plot_saves_a_page(client, tmp_path):
    path = tmp_path / "ts.html"
    with get_task_stream(plot="save", filename=str(path)) as ts:
        client.gather(client.map(slow_inc, range(4), pure=False))
    page = path.read_text()
    assert page.startswith("<!doctype html>") and "drawStream" in page
    assert ts.figure is not None and "<iframe" in ts.figure._repr_html_()
    records, fig = client.get_task_stream(count=4, plot=True)
    assert len(records) == 4 and "slow_inc" in fig.html


def report_data(page):
    m = re.search(r'<script id="report-data" type="application/json">(.*?)</script>', page, re.S)
    return json.loads(m.group(1))


def test_performance_report_writes_one_self_contained_page(client, tmp_path):
    path = tmp_path / "report.html"
    with performance_report(filename=str(path)):
        futures = client.map(slow_inc, range(12), pure=False)
        client.submit(total, futures).result()
        time.sleep(0.6)  # a few memory samples
    page = path.read_text()
    assert "http://" not in page and "https://" not in page and "<script src" not in page
    data = report_data(page)
    prefixes = {p["prefix"]: p["tasks"] for p in data["prefixes"]}
    assert prefixes == {"slow_inc": 12, "total": 1}
    assert {w[0] for w in data["workers"]} == {"worker-0", "worker-1"}
    assert len(data["memory"]["t"]) >= 3
    assert set(data["memory"]["workers"]) == {"worker-0", "worker-1"}
    assert data["compute_seconds"] >= 12 * 0.02
    assert data["stop"] - data["start"] >= 600


def test_performance_report_to_an_unwritable_path_raises_oserror(client, tmp_path):
    with pytest.raises(FileNotFoundError):
        with performance_report(filename=str(tmp_path / "missing" / "report.html")):
            client.submit(slow_inc, 1, pure=False).result()


def test_memory_sampler_sees_results_held_on_the_cluster(client):
    ms = MemorySampler()
    with ms.sample("nothing held", measure="managed", interval=0.1):
        time.sleep(1.3)
    with ms.sample("24 MiB held", measure="managed", interval=0.1):
        held = client.map(block, range(3), mib=8, pure=False)
        client.gather(held)
        time.sleep(1.3)  # the workers report memory once a second
    df = ms.to_pandas()
    assert list(df.columns) == ["nothing held", "24 MiB held"]
    assert ms.samples["nothing held"][-1][1] < 8 * 2**20
    assert ms.samples["24 MiB held"][-1][1] >= 24 * 2**20
    aligned = ms.to_pandas(align=True)
    assert aligned.index[0] == pd.Timedelta(0)
    with pytest.raises(ValueError, match="measure must be one of"):
        ms.sample(measure="everything")
    del held


def test_logs_of_the_scheduler_and_each_worker(client):
    lines = client.get_scheduler_logs()
    for name in ("worker-0", "worker-1"):
        assert any(f"worker {name}" in line and "connected" in line for line in lines), lines[-5:]
    logs = client.get_worker_logs()
    assert set(logs) == set(client.scheduler_info()["workers"])
    for lines in logs.values():
        assert any("registered with the scheduler" in line for line in lines), lines
    assert len(client.get_scheduler_logs(n=2)) == 2
    # A task that fails is logged, with its key, by the worker that ran it (in its next
    # heartbeat).
    bad = client.submit(explode, 7, pure=False)
    with pytest.raises(ZeroDivisionError):
        bad.result()

    def failure_logged():
        lines = [line for v in client.get_worker_logs().values() for line in v]
        return any(bad.key in line and "failed" in line and "WARN" in line for line in lines)

    deadline = time.monotonic() + 10
    while not failure_logged() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert failure_logged()


def test_progress_in_a_notebook_is_a_widget_updated_as_futures_finish(client):
    from oxidask.distributed import progress
    from oxidask.distributed.diagnostics import ProgressWidget

    import ipywidgets  # noqa: F401  (imported before the tasks start: it takes a while)

    good = client.map(slow_inc, range(6), seconds=0.5, pure=False)
    bad = client.submit(explode, 1, pure=False)
    w = progress(good, bad, notebook=True)
    assert isinstance(w, ProgressWidget)
    assert not all(f.done() for f in good), "it returns while the tasks run"
    assert w.totals == {"slow_inc": 6, "explode": 1}
    deadline = time.monotonic() + 10
    while (w.bars["slow_inc"].value < 1 or w.bars["explode"].value < 1) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert w.bars["slow_inc"].value == 1.0 and w.bars["slow_inc"].bar_style == "success"
    assert w.labels["slow_inc"].value == "6 / 6"
    assert w.bars["explode"].bar_style == "danger" and "1 erred" in w.labels["explode"].value
    assert w.elapsed.value.startswith("Finished")
    single = progress(client.map(slow_inc, range(3), pure=False), notebook=True, multi=False)
    assert single.totals == {"tasks": 3}


def test_progress_in_a_terminal_can_return_at_once_and_wait_later(client):
    from oxidask.distributed import progress
    from oxidask.distributed.diagnostics import TextProgressBar

    futures = client.map(slow_inc, range(4), seconds=0.5, pure=False)
    bar = progress(futures, blocking=False)
    assert isinstance(bar, TextProgressBar)
    assert not bar.done and not all(f.done() for f in futures), "it returns while the tasks run"
    assert bar.wait(timeout=30)
    assert all(f.done() for f in futures) and bar.done
    assert progress(futures, blocking=True) is None, "blocking, it returns once they are done"
