"""Seed 002, "Scaling Python with Dask" (Karau & Kimmins), chapter 2 "Getting Started with Dask"
(/work/shared/seeds/002_a4585d93fb05fa64.txt, L525-927): its Python examples run with only the
imports changed (`import dask` -> `import oxidask as dask`,
`from dask.distributed import Client` -> `from oxidask.distributed import Client`).

Tests and the document lines they come from:
- test_example_2_2_client_local_cluster   L589-594   Example 2-2, Client() starts a LocalCluster
- test_example_2_3_sleepy_task            L626-659   Example 2-3, map(dask.delayed(slow_task)), dask.compute(*...)
- test_example_2_4_nested_crawler         L676-713   Example 2-4, @dask.delayed crawl calling dask.compute inside

The book creates its Client in Example 2-2 and keeps it for the chapter, so Examples 2-3 and 2-4
run on the `client` fixture (conftest.py: Client(LocalCluster(n_workers=2, threads_per_worker=1))).

Skipped on purpose:
- Example 2-1 (L546-551): conda/mamba install commands, not Python.
- Example 2-5 (L763-767): dask.array (da.from_array, da.average), a later piece of work.
- Examples 2-6 to 2-9 (L795-843): dask.bag (db.from_delayed, map/flatten, frequencies, foldby);
  they run in test_book_ch5_bag.py, with the bag tests.
- Example 2-10 (L874-896): dask.dataframe (dd.from_delayed, str.split/explode/value_counts) is
  not available yet.

Changes beyond the imports:
- Example 2-3: time.sleep(2) -> time.sleep(0.2) to keep the suite fast; the printed timings are
  kept in variables and compared instead of printed.
- Example 2-4: the crawler fetches http://holdenkarau.com/ from the internet; here it fetches the
  equivalent home page from the `local_web` fixture (http.server on 127.0.0.1), i.e. the URL
  argument is `local_web.url + "/"`. Needs the `requests` and `beautifulsoup4` packages (the
  book installs them in Example 2-1); the test is skipped with a reason when they are missing.
- Example 2-4's last line `dask.compute(crawl(...))` has its value kept in a variable to assert on.
- Example functions are defined inside the test functions so that they are shipped by value to
  the worker processes.
"""

import os

import pytest

import oxidask as dask


def test_example_2_2_client_local_cluster():
    # --- 002:L592-594, as written
    import oxidask as dask
    from oxidask.distributed import Client
    client = Client() # Here we could specify a cluster, defaults to local mode
    # ---
    try:
        # "defaults to local mode": a LocalCluster of worker processes on this machine, and the
        # client becomes the default scheduler for dask.compute (002:L594, L1031, L9051).
        @dask.delayed
        def where(x):
            import os
            return os.getpid(), x * 2

        (pid, doubled), = dask.compute(where(21))
        assert doubled == 42
        assert pid != os.getpid()
        assert client.submit(sum, [1, 2, 3]).result() == 6
    finally:
        client.close()


def test_example_2_3_sleepy_task(client):
    # --- 002:L635-655, as written except time.sleep(2) -> time.sleep(0.2)
    import timeit


    def slow_task(x):
        import time
        time.sleep(0.2) # Do something sciency/business
        return x


    things = range(10)

    very_slow_result = map(slow_task, things)
    slowish_result = map(dask.delayed(slow_task), things)

    slow_time = timeit.timeit(lambda: list(very_slow_result), number=1)
    fast_time = timeit.timeit(
        lambda: list(
            dask.compute(
                *slowish_result)),
        number=1)
    print("In sequence {}, in parallel {}".format(slow_time, fast_time))
    # ---

    # L657 "Dask can run some of the tasks in parallel": 10 x 0.2 s in sequence is >= 2 s; on two
    # single-threaded workers the delayed version needs about 1 s.
    assert slow_time >= 10 * 0.2
    assert fast_time < slow_time
    # Both maps were consumed by the timed lambdas.
    assert list(very_slow_result) == [] and list(slowish_result) == []
    # The values themselves: dask.compute(*delayeds) returns one result per argument, in order.
    # (slow_task returns its argument.)
    assert dask.compute(*map(dask.delayed(slow_task), things)) == tuple(things)


def _crawl_plain(url, depth=0, maxdepth=1, maxlinks=4):
    """Plain-Python oracle for Example 2-4: the same steps without dask, recursing directly."""
    import requests
    from bs4 import BeautifulSoup

    links = []
    try:
        f = requests.get(url)
        links += [(url, f.text)]
        if depth > maxdepth:
            return links
        soup = BeautifulSoup(f.text, "html.parser")
        c = 0
        for link in soup.find_all("a"):
            if "href" in link:
                c = c + 1
                links += _crawl_plain(link["href"], depth=(depth + 1), maxdepth=maxdepth)
                if c > maxlinks:
                    break
        return links
    except requests.exceptions.InvalidSchema:
        return []


def test_example_2_4_nested_crawler(client, local_web):
    pytest.importorskip("requests", reason="Example 2-4 needs requests (book Example 2-1)")
    pytest.importorskip("bs4", reason="Example 2-4 needs beautifulsoup4 (book Example 2-1)")

    # --- 002:L683-713, as written except the start URL (local stand-in for holdenkarau.com)
    @dask.delayed
    def crawl(url, depth=0, maxdepth=1, maxlinks=4):
        links = []
        link_futures = []
        try:
            import requests
            from bs4 import BeautifulSoup
            f = requests.get(url)
            links += [(url, f.text)]
            if (depth > maxdepth):
                return links # base case
            soup = BeautifulSoup(f.text, 'html.parser')
            c = 0
            for link in soup.find_all('a'):
                if "href" in link:
                    c = c + 1
                    link_futures += crawl(link["href"],
                                          depth=(depth + 1),
                                          maxdepth=maxdepth)
                    # Don't branch too much; we're still in local mode and the web is
                    # big
                    if c > maxlinks:
                        break
            for r in dask.compute(link_futures):
                links += r
            return links
        except requests.exceptions.InvalidSchema:
            return [] # Skip non-web links


    requests_before = local_web.requests().count("/")
    crawled = dask.compute(crawl(local_web.url + "/"))
    # ---

    home = local_web.url + "/"
    # The page was fetched (by the task, on a worker) from the local site.
    assert local_web.requests().count("/") > requests_before
    # Plain-Python oracle over the same site.
    assert crawled == (_crawl_plain(home),)
    # What that is, spelled out: with BeautifulSoup, `"href" in link` asks whether the string
    # "href" is one of the tag's *children* (Tag.__contains__ looks in .contents), not whether
    # the tag has an href attribute, so no link of a real page is followed: the crawl returns the
    # (url, text) of the start page, after the nested dask.compute of an empty list inside the task.
    assert crawled == ([(home, local_web.pages["/"])],)
