"""Looking back at what a cluster did, as ``dask.distributed``'s diagnostics:
``performance_report`` (one self-contained HTML page of a run), ``get_task_stream`` (the
records of every task run, transfer and spill) and ``MemorySampler`` (the cluster's memory
over time).

    >>> from oxidask.distributed import Client, get_task_stream, performance_report
    >>> client = Client(n_workers=2, dashboard_address=None)
    >>> with performance_report(filename="/tmp/oxidask-report.html"), get_task_stream() as ts:
    ...     total = client.submit(sum, client.map(lambda x: x + 1, range(10))).result()
    >>> sorted({r["startstops"][0]["action"] for r in ts.data}) >= ["compute"]
    True
    >>> client.close()
"""

import html
import threading
import time

__all__ = ["MemorySampler", "TextProgressBar", "get_task_stream", "performance_report"]


def _client(client):
    if client is not None:
        return client
    from oxidask.distributed.client import default_client

    return default_client()


def _dask_records(client, flat):
    """Task-stream records in Dask's shape (one dict per task run, transfer or spill)."""
    try:
        addresses = {w["name"]: w["address"] for w in client._core.summary()["workers"]}
    except Exception:  # a closed client: names are all there is
        addresses = {}
    out = []
    for r in flat:
        out.append(
            {
                "key": r["key"],
                "worker": addresses.get(r["worker"], r["worker"]),
                "thread": r["thread"],
                "nbytes": r["nbytes"],
                "status": "OK",
                "type": None,
                "typename": None,
                "metadata": {},
                "startstops": ({"action": r["action"], "start": r["start"], "stop": r["stop"]},),
                "prefix": r["prefix"],
            }
        )
    return out


class TaskStreamFigure:
    """A task stream drawn as a self-contained HTML page (the report's drawing, offline).
    Jupyter shows it inline; ``save(filename)`` writes it."""

    def __init__(self, page):
        self.html = page

    def save(self, filename):
        """Writes the page to ``filename``."""
        with open(filename, "w", encoding="utf-8") as f:
            f.write(self.html)
        return filename

    def _repr_html_(self):
        return (
            '<iframe style="width:100%;height:560px;border:0" srcdoc="'
            + html.escape(self.html, quote=True)
            + '"></iframe>'
        )


def _figure(client, records, plot, filename):
    if records:
        t0 = min(r["startstops"][0]["start"] for r in records)
        t1 = max(r["startstops"][0]["stop"] for r in records)
    else:
        t0 = t1 = time.time()
    fig = TaskStreamFigure(client._core.stream_report(t0, t1).html())
    if plot == "save":
        fig.save(filename)
    return fig


class get_task_stream:
    """Collects the task stream of the block it guards, as Dask's ``get_task_stream``::

        with get_task_stream() as ts:
            x.compute()
        ts.data        # one dict per task run, transfer or spill (see Client.get_task_stream)

    With ``plot=True`` ``ts.figure`` draws them (``plot="save"`` also writes
    ``filename``)."""

    def __init__(self, client=None, plot=False, filename="task-stream.html"):
        self.client = client
        self.plot = plot
        self.filename = filename
        self.data = []
        self.figure = None
        self._recording = None

    def __enter__(self):
        self.client = _client(self.client)
        self._recording = self.client._core.performance_report("task stream")
        return self

    def __exit__(self, *exc):
        run = self._recording.finish()
        self.data.extend(_dask_records(self.client, run.records()))
        if self.plot:
            self.figure = TaskStreamFigure(run.html())
            if self.plot == "save":
                self.figure.save(self.filename)
        return False

    async def __aenter__(self):
        return self.__enter__()

    async def __aexit__(self, *exc):
        return self.__exit__(*exc)


class performance_report:
    """Writes one self-contained HTML page of the block it guards, as Dask's
    ``performance_report``: a summary, the task stream, compute time per task prefix, the
    workers' memory over time, transfers and spills. Opens offline::

        with performance_report(filename="dask-report.html"):
            y.compute()

    ``stacklevel``, ``mode`` and ``storage_options`` are accepted for Dask's signature
    (the page always inlines what it needs; the file is written locally)."""

    def __init__(self, filename="dask-report.html", stacklevel=1, mode=None, storage_options=None):
        self.filename = filename
        self._recording = None
        self.run = None

    def __enter__(self):
        import os

        client = _client(None)
        self._recording = client._core.performance_report(os.path.basename(str(self.filename)))
        return self

    def __exit__(self, *exc):
        self.run = self._recording.finish()
        with open(self.filename, "w", encoding="utf-8") as f:
            f.write(self.run.html())
        return False

    async def __aenter__(self):
        return self.__enter__()

    async def __aexit__(self, *exc):
        return self.__exit__(*exc)


_MEASURES = ("process", "managed", "unmanaged", "spilled")


class MemorySampler:
    """Samples the cluster's memory (summed over workers) while blocks run, as Dask's
    ``distributed.diagnostics.MemorySampler``::

        ms = MemorySampler()
        with ms.sample("with spilling"):
            x.compute()
        ms.to_pandas()   # a column per label (bytes), indexed by time
        ms.plot()        # needs matplotlib

    ``measure`` is ``process`` (resident memory, default), ``managed`` (results held),
    ``unmanaged`` (the rest of the process) or ``spilled`` (on disk)."""

    def __init__(self):
        self.samples = {}

    def sample(self, label=None, *, client=None, measure="process", interval=0.5):
        """A context manager sampling every ``interval`` seconds into ``samples[label]``."""
        if measure not in _MEASURES:
            raise ValueError(f"measure must be one of {', '.join(_MEASURES)}; got {measure!r}")
        if label is None:
            label = f"Samples {len(self.samples)}"
        return _Sampling(self, label, _client(client), measure, interval)

    def to_pandas(self, *, align=False):
        """A ``pandas.DataFrame`` with a column of bytes per label, indexed by time
        (``align=True``: by time since each label's first sample)."""
        import pandas as pd

        series = []
        for label, points in self.samples.items():
            if not points:
                continue
            t = pd.to_datetime([p[0] for p in points], unit="s")
            if align:
                t = t - t[0]
            series.append(pd.Series([p[1] for p in points], index=t, name=label))
        if not series:
            return pd.DataFrame()
        return pd.concat(series, axis=1).sort_index().ffill()

    def plot(self, *, align=False, **kwargs):
        """Plots the samples in GiB with pandas (needs matplotlib)."""
        df = self.to_pandas(align=align) / 2**30
        kwargs.setdefault("xlabel", "time" if not align else "time since the start")
        kwargs.setdefault("ylabel", "Cluster memory (GiB)")
        return df.plot(**kwargs)


class _Sampling:
    def __init__(self, sampler, label, client, measure, interval):
        self.sampler, self.label, self.client = sampler, label, client
        self.measure, self.interval = measure, interval
        self._stop = threading.Event()
        self._thread = None

    def _measure(self):
        total = 0
        for w in self.client._core.summary()["workers"]:
            if self.measure == "process":
                total += w["rss"]
            elif self.measure == "managed":
                total += w["memory"]
            elif self.measure == "unmanaged":
                total += max(0, w["rss"] - w["memory"])
            else:
                total += w["spilled"]
        return total

    def _run(self, points):
        while True:
            try:
                points.append((time.time(), self._measure()))
            except Exception:  # the client closed: the samples so far stay
                return
            if self._stop.wait(self.interval):
                return

    def __enter__(self):
        points = self.sampler.samples.setdefault(self.label, [])
        self._thread = threading.Thread(target=self._run, args=(points,), daemon=True, name="memory-sampler")
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        try:
            self.sampler.samples[self.label].append((time.time(), self._measure()))
        except Exception:
            pass
        return False

    async def __aenter__(self):
        return self.__enter__()

    async def __aexit__(self, *exc):
        return self.__exit__(*exc)


def _key_prefix(key):
    """The task prefix of a key, as Dask's ``key_split``: ``"inc-1f2e…"`` → ``"inc"``."""
    if isinstance(key, tuple):
        key = key[0]
    words = str(key).split("-")
    while len(words) > 1 and (words[-1].isdigit() or (len(words[-1]) >= 8 and all(c in "0123456789abcdef" for c in words[-1]))):
        words.pop()
    return "-".join(words)


class ProgressWidget:
    """A progress display for Jupyter (needs ``ipywidgets``), as Dask's
    ``MultiProgressWidget``: a bar per task prefix (one bar with ``multi=False``), updated as
    futures finish; the notebook is free meanwhile. ``progress(futures)`` shows one in a
    notebook; ``ProgressWidget(futures).widget`` is the ipywidgets box."""

    def __init__(self, futures, multi=True, complete=True):
        import ipywidgets

        self._lock = threading.Lock()
        groups = {}
        for f in futures:
            groups.setdefault(_key_prefix(f.key) if multi else "tasks", []).append(f)
        self.totals = {g: len(fs) for g, fs in groups.items()}
        self.done = {g: 0 for g in groups}
        self.erred = {g: 0 for g in groups}
        self.bars, self.labels, rows = {}, {}, []
        for g in sorted(groups):
            bar = ipywidgets.FloatProgress(value=0.0, min=0.0, max=1.0, description=g)
            label = ipywidgets.HTML(value=f"0 / {self.totals[g]}")
            self.bars[g], self.labels[g] = bar, label
            rows.append(ipywidgets.HBox([bar, label]))
        self.elapsed = ipywidgets.HTML(value="")
        self.widget = ipywidgets.VBox([self.elapsed, *rows])
        self._start = time.monotonic()
        for g, fs in groups.items():
            for f in fs:
                f.add_done_callback(lambda f, g=g: self._finished(g, f))

    def _finished(self, group, future):
        with self._lock:
            if future.status == "finished":
                self.done[group] += 1
            else:
                self.erred[group] += 1
            n, bad, total = self.done[group], self.erred[group], self.totals[group]
            bar = self.bars[group]
            bar.value = (n + bad) / total
            self.labels[group].value = f"{n + bad} / {total}" + (f" ({bad} erred)" if bad else "")
            if bad:
                bar.bar_style = "danger"
            elif n == total:
                bar.bar_style = "success"
            finished = sum(self.done.values()) + sum(self.erred.values())
            if finished == sum(self.totals.values()):
                self.elapsed.value = f"Finished: {time.monotonic() - self._start:.1f} s"

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


class TextProgressBar:
    """A progress bar on stderr (drawn when stderr is a terminal) for a list of futures.

    ``progress(...)`` returns one when it does not block: a background thread draws the
    bar while the prompt stays free. ``wait()`` blocks until every future is done.

    >>> bar = progress(futures, blocking=False)   # doctest: +SKIP
    >>> bar.wait()                                # doctest: +SKIP
    """

    def __init__(self, futures):
        import threading

        self._futures = list(futures)
        self._error = None
        self._thread = threading.Thread(target=self._draw, name="oxidask-progress", daemon=True)
        self._thread.start()

    def _draw(self):
        try:
            self._futures[0].client._core.progress(self._futures)
        except BaseException as e:  # the scheduler was lost: wait() reports it
            self._error = e

    @property
    def done(self):
        """True once every future is done (or the bar stopped because the cluster was lost)."""
        return not self._thread.is_alive()

    def wait(self, timeout=None):
        """Blocks until every future is done; raises if the cluster was lost meanwhile.
        Returns False if ``timeout`` seconds passed first."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            return False
        if self._error is not None:
            raise self._error
        return True

    def __repr__(self):
        n = sum(1 for f in self._futures if f.done())
        return f"<TextProgressBar: {n} / {len(self._futures)} done>"


def _interactive():
    """True in a REPL or IPython (where a blocking bar would hold the prompt)."""
    import sys

    return hasattr(sys, "ps1") or bool(sys.flags.interactive)


def _in_notebook():
    """True inside a Jupyter kernel with ipywidgets importable."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is None or type(shell).__name__ != "ZMQInteractiveShell":
            return False
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True
