"""Seed 002, "Scaling Python with Dask" (Karau & Kimmins): the dask.bag examples of chapter 2
(word count over a crawler's output), the bag graph of chapter 3's Figure 3-2 and chapter 5
"Dask's Collections", section "Dask Bags" (/work/shared/seeds/002_a4585d93fb05fa64.txt), run
with only the imports changed (`import dask` -> `import oxidask as dask`,
`import dask.bag as db` -> `import oxidask.bag as db`, `from dask import bag` ->
`from oxidask import bag`).

Tests and the document lines they come from:
- test_examples_2_6_to_2_9_word_count     L795-843    from_delayed(map(crawl, ...)), map/flatten,
                                                      dask.compute(frequencies()), foldby
- test_figure_3_2_visualize               L1489-1498  dask.visualize(words_bag.frequencies())
- test_example_5_1_preprocessing_json     L3153-3177  read_text(urls, linedelimiter="NODELIM"),
                                                      map(json.loads(...)["results"]).flatten()
- test_example_5_2_pdfs_through_fsspec     L3159-3185  fsspec's url_to_fs/expand_path, PyPDF2,
                                                      from_sequence(files).map(load_file)
- test_example_5_3_custom_load_function   L3210-3218  from_sequence(range(20), npartitions=5)

Skipped on purpose:
- Examples 5-4 and 5-5 (L3211-3311) iterate a Delayed of unknown length
  (`dirs += dir_list`), which raises TypeError in Dask as well.

Changes beyond the imports:
- Example 2-6 crawls two GitHub pages from the internet; here `crawl` is Example 2-4's crawler
  (the chapter's) and `githubs` are two pages of a local web site served by http.server from the
  test process (the tests may not use the network). The crawler needs `requests` and
  `beautifulsoup4` (the book installs them in Example 2-1); skipped with a reason without them.
- Example 5-1 reads ten pages of the FDA recall API; here the same URL shapes point at a local
  http.server that answers like the API (a "meta" field and a "results" list).
- Example 5-1's last line `bag.Bag.to_dataframe(cleaned_records)` gives an oxidask.dataframe,
  checked against pandas' DataFrame of the same records.
- Example 5-2 reads PDFs the test writes into a temporary directory (one of them broken, to
  see the example's error path), through fsspec's local filesystem (`file://`).
- Results are kept in variables to assert on, against plain-Python oracles.
- The chapter-2 examples run on the `client` fixture (a LocalCluster of two worker processes), as
  the book keeps its Client for the chapter; the chapter-5 ones on the default local scheduler.
"""

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

import oxidask as dask


def _fda_record(i):
    return {"recall_number": f"F-{i:04d}-2024", "state": ["CA", "NY", "TX"][i % 3],
            "classification": f"Class {'I' * (1 + i % 3)}", "reason": "Undeclared milk " * (i % 2)}


class _FdaHandler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        parts = urlsplit(self.path)
        if parts.path != "/food/enforcement.json":
            self.send_response(404)
            self.end_headers()
            return
        q = parse_qs(parts.query)
        limit, skip = int(q["limit"][0]), int(q["skip"][0])
        body = json.dumps(
            {"meta": {"skip": skip, "limit": limit},
             "results": [_fda_record(i) for i in range(skip, skip + limit)]},
            indent=2,  # multi-line JSON, as the book says the API returns
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def fda_api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FdaHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_examples_2_6_to_2_9_word_count(client, local_web):
    pytest.importorskip("requests", reason="the crawler needs requests (book Example 2-1)")
    pytest.importorskip("bs4", reason="the crawler needs beautifulsoup4 (book Example 2-1)")

    # Example 2-4's crawler (002:L683-713), as the chapter defines it.
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

    # --- 002:L801-806, as written except the two URLs (pages of the local site)
    import oxidask.bag as db
    githubs = [
        local_web.url + "/books.html",
        local_web.url + "/talks.html"]
    initial_bag = db.from_delayed(map(crawl, githubs))
    # --- 002:L818-819, as written
    words_bag = initial_bag.map(
        lambda url_contents: url_contents[1].split(" ")).flatten()
    # --- 002:L824, as written (its value kept)
    frequencies, = dask.compute(words_bag.frequencies())

    # --- 002:L829-843, as written
    def make_word_tuple(w):
        return (w, 1)


    def get_word(word_count):
        return word_count[0]


    def sum_word_counts(wc1, wc2):
        return (wc1[0], wc1[1] + wc2[1])


    word_count = words_bag.map(make_word_tuple).foldby(get_word, sum_word_counts)
    # ---

    # Oracle: the crawler returns (url, page text) for each start page; the words are the
    # texts split on spaces.
    expected = Counter(w for u in githubs for w in local_web.pages[u[len(local_web.url):]].split(" "))
    assert dict(frequencies) == dict(expected)
    assert len(frequencies) == len(expected)
    # foldby without an initial value folds (word, 1) tuples into (word, count) per word.
    assert dict(word_count.compute()) == {w: (w, c) for w, c in expected.items()}
    assert initial_bag.npartitions == 2


def test_figure_3_2_visualize(tmp_path):
    import oxidask.bag as db
    words_bag = db.from_sequence(["a b", "b c"], npartitions=2).map(lambda t: t.split(" ")).flatten()
    # --- 002:L1489-1490: "call dask.visualize on words_bag.frequencies()"
    dask.visualize(words_bag.frequencies(), filename=str(tmp_path / "wordcount.dot"))
    # ---
    dot = (tmp_path / "wordcount.dot").read_text()
    # The graph of Figure 3-2: per-partition frequencies, their aggregate, the items.
    assert "frequencies" in dot and "dictitems" in dot and "lambda" in dot


def test_example_5_1_preprocessing_json(fda_api):
    # --- 002:L3156-3177, as written except the API's address (a local stand-in) and the import
    from oxidask import bag

    def make_url(idx):
        page_size = 100
        start = idx * page_size
        u = f"{fda_api}/food/enforcement.json?limit={page_size}&skip={start}"
        return u


    urls = list(map(make_url, range(0, 10)))
    # Since they are multi-line json we can't use the default \n line delim
    raw_json = bag.read_text(urls, linedelimiter="NODELIM")


    def clean_records(raw_records):
        import json
        # We don't need the meta field just the results field
        return json.loads(raw_records)["results"]


    cleaned_records = raw_json.map(clean_records).flatten()
    # And now we can convert it to a DataFrame
    df = bag.Bag.to_dataframe(cleaned_records)
    # ---

    import pandas as pd
    import pandas.testing as pdt

    assert df.npartitions == cleaned_records.npartitions
    pdt.assert_frame_equal(df.compute(), pd.DataFrame([_fda_record(i) for i in range(1000)]))

    assert raw_json.npartitions == 10  # one record (a whole response) per URL
    records = cleaned_records.compute()
    assert records == [_fda_record(i) for i in range(1000)]
    by_state = dict(cleaned_records.pluck("state").frequencies().compute())
    assert by_state == dict(Counter(_fda_record(i)["state"] for i in range(1000)))


def test_example_5_3_custom_load_function():
    from oxidask import bag
    # --- 002:L3210-3218, as written
    def special_load_function(x):
        ## Do your special loading logic in this function, like reading a database
        return ["Timbit", "Is", "Awesome"][0: x % 4]


    partitions = bag.from_sequence(range(20), npartitions=5)
    raw_data = partitions.map(special_load_function).flatten()
    # ---
    assert partitions.npartitions == 5
    expected = [w for x in range(20) for w in ["Timbit", "Is", "Awesome"][0: x % 4]]
    assert raw_data.compute() == expected
    assert dict(raw_data.frequencies().compute()) == dict(Counter(expected))


def _pdf(text):
    """A one-page PDF showing ``text`` (hand-written objects and cross-reference table)."""
    content = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


def test_example_5_2_pdfs_through_fsspec(tmp_path):
    import fsspec
    from oxidask import bag

    texts = {f"report-{i}.pdf": f"Timbit report {i}" for i in range(6)}
    (tmp_path / "nested").mkdir()
    for i, (name, text) in enumerate(texts.items()):
        where = tmp_path / "nested" if i % 2 else tmp_path
        (where / name).write_bytes(_pdf(text))
    (tmp_path / "broken.pdf").write_bytes(b"not a pdf at all")

    # --- 002:L3159-3185, as written
    def discover_files(path: str):
        (fs, fspath) = fsspec.core.url_to_fs(path)
        return (fs, fs.expand_path(fspath, recursive="true"))


    def load_file(fs, file):
        """Load (and initially process) the data."""
        from PyPDF2 import PdfReader
        try:
            file_contents = fs.open(file)
            pdf = PdfReader(file_contents)
            return (file, pdf.pages[0].extract_text())
        except Exception as e:
            return (file, e)


    def load_data(path: str):
        (fs, files) = discover_files(path)
        bag_filenames = bag.from_sequence(files)
        contents = bag_filenames.map(lambda f: load_file(fs, f))
        return contents
    # ---
    contents = load_data(f"file://{tmp_path}").compute()
    by_name = {f.rsplit("/", 1)[-1]: v for f, v in contents}
    # expand_path lists directories too; PyPDF2 fails on them and on the broken file.
    for name, text in texts.items():
        assert by_name[name] == text
    assert isinstance(by_name["broken.pdf"], Exception)
    assert isinstance(by_name["nested"], Exception)
