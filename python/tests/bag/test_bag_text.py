"""read_text and to_textfiles against files written and read with plain Python: globs, lists,
directories, gzip/bz2/xz, blocksize cuts, line delimiters, include_path, JSON lines."""

import bz2
import gzip
import json
import lzma
import os
import random

import pytest

import oxidask
import oxidask.bag as db

OPENERS = {"": open, ".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def write(path, text):
    ext = os.path.splitext(str(path))[1]
    with OPENERS.get(ext, open)(path, "wt", encoding="utf-8") as f:
        f.write(text)


def lines_of(text):
    """Python's own line split, endings kept (what Dask's read_text gives)."""
    return text.splitlines(keepends=True)


def corpus(seed, nlines):
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "épsilon", "zeta"]
    return "".join(" ".join(rng.choice(words) for _ in range(rng.randint(0, 6))) + "\n" for _ in range(nlines))


@pytest.mark.parametrize("ext", ["", ".gz", ".bz2", ".xz"])
def test_read_text_files_and_compression(tmp_path, ext, scheduler):
    texts = [corpus(s, n) for s, n in [(1, 30), (2, 0), (3, 7)]]
    paths = []
    for i, t in enumerate(texts):
        p = tmp_path / f"part-{i}.txt{ext}"
        write(p, t)
        paths.append(str(p))
    expect = [line for t in texts for line in lines_of(t)]
    for spec in (str(tmp_path / f"part-*.txt{ext}"), paths, str(tmp_path)):
        b = db.read_text(spec)
        assert b.npartitions == 3  # one per file
        assert b.compute(scheduler=scheduler) == expect
    withpath = db.read_text(paths, include_path=True).compute(scheduler=scheduler)
    assert withpath == [(line, p) for t, p in zip(texts, paths) for line in lines_of(t)]
    grouped = db.read_text(paths, files_per_partition=2)
    assert grouped.npartitions == 2 and grouped.compute(scheduler=scheduler) == expect


@pytest.mark.parametrize("blocksize", [1, 7, 64, "100B", 10_000])
def test_read_text_blocksize_cuts_at_line_ends(tmp_path, blocksize, scheduler):
    text = corpus(5, 40) + "last line without newline"
    p = tmp_path / "big.txt"
    write(p, text)
    b = db.read_text(str(p), blocksize=blocksize)
    size = os.path.getsize(p)
    bs = blocksize if isinstance(blocksize, int) else 100
    assert b.npartitions == -(-size // bs)
    assert b.compute(scheduler=scheduler) == lines_of(text)
    got = b.str.strip().str.split().flatten().frequencies().compute(scheduler=scheduler)
    from collections import Counter

    assert dict(got) == dict(Counter(text.split()))


def test_read_text_linedelimiter(tmp_path, scheduler):
    p = tmp_path / "records.txt"
    write(p, "a;b;c;")
    assert db.read_text(str(p), linedelimiter=";").compute(scheduler=scheduler) == ["a;", "b;", "c;", ""]
    assert db.read_text(str(p), linedelimiter=";", blocksize=2).compute(scheduler=scheduler) == ["a;", "b;", "c;"]
    # A delimiter that never occurs: the whole file is one record (the book's Example 5-1).
    q = tmp_path / "doc.json"
    doc = json.dumps({"meta": 1, "results": [{"x": 1}, {"x": 2}]}, indent=2)
    write(q, doc)
    whole = db.read_text(str(q), linedelimiter="NODELIM")
    assert whole.compute(scheduler=scheduler) == [doc]
    assert whole.map(json.loads).pluck("results").flatten().pluck("x").compute(scheduler=scheduler) == [1, 2]
    # Windows line ends: universal newlines by default (as Dask), kept with "\r\n".
    r = tmp_path / "crlf.txt"
    r.write_bytes(b"one\r\ntwo\r\n")
    assert db.read_text(str(r)).compute(scheduler=scheduler) == ["one\n", "two\n"]
    assert db.read_text(str(r), linedelimiter="\r\n").compute(scheduler=scheduler) == ["one\r\n", "two\r\n"]


def test_json_lines(tmp_path, scheduler):
    recs = [{"id": i, "name": f"n{i % 3}", "tags": ["t"] * (i % 4)} for i in range(25)]
    for i in range(3):
        write(tmp_path / f"{i}.jsonl.gz", "".join(json.dumps(r) + "\n" for r in recs[i::3]))
    b = db.read_text(str(tmp_path / "*.jsonl.gz")).map(json.loads)
    ordered = [r for i in range(3) for r in recs[i::3]]
    assert b.compute(scheduler=scheduler) == ordered
    assert b.filter(lambda r: r["id"] % 2).pluck("name").frequencies(sort=True).compute(scheduler=scheduler)[0][1] == max(
        sum(1 for r in recs if r["id"] % 2 and r["name"] == n) for n in ("n0", "n1", "n2")
    )
    assert b.pluck("tags").flatten().count().compute(scheduler=scheduler) == sum(len(r["tags"]) for r in recs)


@pytest.mark.parametrize("ext", [".txt", ".txt.gz", ".txt.bz2"])
def test_to_textfiles_round_trip(tmp_path, ext, scheduler):
    data = [f"line {i} é" for i in range(23)]
    b = db.from_sequence(data, npartitions=4)
    out = b.to_textfiles(str(tmp_path / "out" / f"*{ext}"), scheduler=scheduler)
    assert out == [str(tmp_path / "out" / f"{i}{ext}") for i in range(4)]
    assert db.read_text(out).str.rstrip("\n").compute(scheduler=scheduler) == data
    # Plain Python reads what was written: one record per line, no final newline by default.
    with OPENERS[os.path.splitext(ext)[1] if ext != ".txt" else ""](out[0], "rt", encoding="utf-8") as f:
        first = f.read()
    assert not first.endswith("\n") and first.split("\n") == data[:6]


def test_to_textfiles_directory_name_function_and_lazy(tmp_path):
    b = db.from_sequence(["a", "b", "c"], npartitions=3)
    paths = b.to_textfiles(str(tmp_path / "d"), name_function=lambda i: f"file-{i:02d}", last_endline=True)
    assert paths == [str(tmp_path / "d" / f"file-{i:02d}.part") for i in range(3)]
    assert [open(p).read() for p in paths] == ["a\n", "b\n", "c\n"]
    lazy = b.map(str.upper).to_textfiles([str(tmp_path / f"{c}.txt") for c in "xyz"], compute=False)
    assert len(lazy) == 3 and not (tmp_path / "x.txt").exists()
    oxidask.compute(*lazy)
    assert (tmp_path / "z.txt").read_text() == "C"
    with pytest.raises(ValueError, match="2 paths for a bag of 3"):
        b.to_textfiles([str(tmp_path / "1"), str(tmp_path / "2")])


def test_read_text_bad_paths(tmp_path):
    missing = str(tmp_path / "nope.txt")
    with pytest.raises(FileNotFoundError, match="nope.txt") as e:
        db.read_text(missing)
    assert e.value.filename == missing
    write(tmp_path / "there.txt", "x\n")
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        db.read_text([str(tmp_path / "there.txt"), missing])
    with pytest.raises(ValueError, match="No files found"):
        db.read_text(str(tmp_path / "*.csv"))
    with pytest.raises(ValueError, match="'s3' protocol is not supported"):
        db.read_text("s3://bucket/key.txt")
    p = tmp_path / "c.txt.gz"
    write(p, "x\n")
    with pytest.raises(ValueError, match="compressed"):
        db.read_text(str(p), blocksize=10)
    with pytest.raises(ValueError, match="Only one of blocksize or files_per_partition"):
        db.read_text(str(p), blocksize=10, files_per_partition=2)


@pytest.fixture
def web(tmp_path):
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    (tmp_path / "a.txt").write_text("one\ntwo\n")
    (tmp_path / "b.jsonl").write_text('{"x": 1}\n{"x": 2}\n')
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_urls(web, scheduler):
    import urllib.error

    b = db.from_url([f"{web}/a.txt", f"{web}/b.jsonl"])
    assert b.npartitions == 2
    assert b.compute(scheduler=scheduler) == [b"one\n", b"two\n", b'{"x": 1}\n', b'{"x": 2}\n']
    assert db.read_text(f"{web}/b.jsonl").map(json.loads).pluck("x").sum().compute(scheduler=scheduler) == 3
    assert db.read_text([f"{web}/a.txt"], include_path=True).compute(scheduler=scheduler)[0] == ("one\n", f"{web}/a.txt")
    with pytest.raises(urllib.error.HTTPError, match="404"):
        db.from_url(f"{web}/missing.txt").compute(scheduler=scheduler)
    with pytest.raises(ValueError, match="local files only"):
        db.read_text(f"{web}/a.txt", blocksize=10)
