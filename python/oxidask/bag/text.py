"""Text files as bags of lines, and bags written as text files (Dask's ``dask.bag.text`` and
``to_textfiles``).

Paths are local files (a path, a glob such as ``data/*.json.gz``, a directory, or a list of
them) and ``http://``/``https://`` URLs (read whole, with ``blocksize=None``). Files ending in
``.gz``, ``.bz2`` and ``.xz`` are decompressed (``compression="infer"``). Other protocols
(``s3://`` ...) are refused with an error saying so: oxidask's Python package has no object
store client yet.
"""

import bz2
import glob
import gzip
import io
import lzma
import os
import sys
import urllib.error
import urllib.request

from oxidask.bag.core import Bag, _task_fn, tokenize
from oxidask.utils import parse_bytes

system_encoding = sys.getdefaultencoding()

_COMPRESSIONS = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open, "lzma": lzma.open}
_EXTENSIONS = {".gz": "gzip", ".gzip": "gzip", ".bz2": "bz2", ".xz": "xz", ".lzma": "lzma"}
_STANDARD_NEWLINES = (None, "", "\n", "\r", "\r\n")


def _compression_of(path, compression):
    if compression == "infer":
        return _EXTENSIONS.get(os.path.splitext(path)[1].lower())
    if compression is None or compression in _COMPRESSIONS:
        return compression
    raise ValueError(
        f"unknown compression {compression!r}; use 'infer', None, or one of {sorted(_COMPRESSIONS)}"
    )


def _is_url(path):
    return "://" in path


def _check_protocol(path):
    protocol = path.split("://", 1)[0].lower()
    if protocol in ("http", "https"):
        return
    if protocol == "file":
        return
    raise ValueError(
        f"cannot read {path!r}: oxidask.bag reads local files and http(s) URLs; the "
        f"{protocol!r} protocol is not supported yet (copy the files locally, or list them and "
        "load them with from_sequence(paths).map(your_loader))"
    )


def _expand(urlpath):
    """The files ``urlpath`` names, in order: globs expanded and sorted, directories listed."""
    items = [urlpath] if isinstance(urlpath, (str, os.PathLike)) else list(urlpath)
    out = []
    for item in items:
        path = os.fspath(item)
        if _is_url(path):
            _check_protocol(path)
            if path.lower().startswith("file://"):
                path = path[len("file://"):]
            else:
                out.append(path)
                continue
        path = os.path.expanduser(path)
        if glob.has_magic(path):
            found = sorted(p for p in glob.glob(path) if os.path.isfile(p))
            if not found:
                raise ValueError("No files found", urlpath)
            out.extend(found)
        elif os.path.isdir(path):
            found = sorted(
                os.path.join(path, p) for p in os.listdir(path) if os.path.isfile(os.path.join(path, p))
            )
            if not found:
                raise ValueError("No files found", urlpath)
            out.extend(found)
        elif os.path.exists(path):
            out.append(path)
        else:
            raise FileNotFoundError(2, f"read_text: no such file {path!r}", path)
    if not out:
        raise ValueError("No files found", urlpath)
    return out


def _file_id(path):
    if _is_url(path):
        return path
    st = os.stat(path)
    return (os.path.abspath(path), st.st_size, st.st_mtime_ns)


class HTTPError(urllib.error.HTTPError):
    """``urllib.error.HTTPError`` that survives pickling (the original cannot be rebuilt), so
    a failed fetch in a task reaches the caller as itself."""

    def __reduce__(self):
        return type(self), (self.url, self.code, self.msg, None, None)


def _urlopen(url):
    try:
        return urllib.request.urlopen(url)
    except urllib.error.HTTPError as e:
        raise HTTPError(url, e.code, e.msg, None, None) from None


def _open_text(path, compression, encoding, errors, newline):
    if _is_url(path):
        with _urlopen(path) as r:
            data = r.read()
        if compression:
            data = _COMPRESSIONS[compression](io.BytesIO(data)).read()
        return io.TextIOWrapper(io.BytesIO(data), encoding=encoding, errors=errors, newline=newline)
    if compression:
        return _COMPRESSIONS[compression](path, "rt", encoding=encoding, errors=errors, newline=newline)
    return open(path, encoding=encoding, errors=errors, newline=newline)


def _split_text(text, delimiter, keep_empty_last):
    """``text`` cut after each ``delimiter`` (kept, as Dask keeps line endings); Dask keeps
    the empty string after a final delimiter when it reads whole files, not blocks."""
    if not text:
        return []
    parts = text.split(delimiter)
    last = parts[-1:] if (parts[-1] or keep_empty_last) else []
    return [p + delimiter for p in parts[:-1]] + last


def _read_file(path, compression, encoding, errors, linedelimiter, include_path):
    """The records of one whole file (``blocksize=None``)."""
    newline = linedelimiter if linedelimiter in _STANDARD_NEWLINES else ""
    with _open_text(path, compression, encoding, errors, newline) as f:
        if linedelimiter in _STANDARD_NEWLINES:
            lines = list(f)
        else:
            lines = _split_text(f.read(), linedelimiter, True)
    if include_path:
        return [(line, path) for line in lines]
    return lines


def _seek_delimiter(f, delimiter, chunk=2**16):
    """Moves ``f`` just past the next ``delimiter`` (or to the end); fsspec's rule, so the
    block before and the block after agree on where they meet."""
    if f.tell() == 0:
        return
    last = b""
    while True:
        current = f.read(chunk)
        if not current:
            return
        full = last + current
        i = full.find(delimiter)
        if i >= 0:
            f.seek(f.tell() - (len(full) - i) + len(delimiter))
            return
        last = full[-(len(delimiter) - 1):] if len(delimiter) > 1 else b""


def _read_block(path, offset, length, delimiter, encoding, errors, linedelimiter, include_path):
    """The records of ``length`` bytes of ``path`` from ``offset``, widened to whole lines."""
    with open(path, "rb") as f:
        f.seek(offset)
        _seek_delimiter(f, delimiter)
        start = f.tell()
        f.seek(offset + length)
        _seek_delimiter(f, delimiter)
        end = f.tell()
        f.seek(start)
        data = f.read(max(end - start, 0))
    text = data.decode(encoding, errors)
    if linedelimiter in _STANDARD_NEWLINES:
        lines = list(io.StringIO(text, newline=linedelimiter))
    else:
        lines = _split_text(text, linedelimiter, False)
    if include_path:
        return [(line, path) for line in lines]
    return lines


def read_text(urlpath, blocksize=None, compression="infer", encoding=system_encoding, errors="strict",
              linedelimiter=None, collection=True, storage_options=None, files_per_partition=None,
              include_path=False):
    """A bag of the lines of text files, each line with its line ending (as Dask).

    - ``urlpath``: a path, a glob (``"logs/*.txt.gz"``), a directory, an ``http(s)://`` URL,
      or a list of them.
    - ``blocksize``: ``None`` (one partition per file), or bytes per partition
      (``"64MiB"``; uncompressed files only), cut at line boundaries.
    - ``compression``: ``"infer"`` (from ``.gz``/``.bz2``/``.xz``), ``None``, ``"gzip"``,
      ``"bz2"`` or ``"xz"``.
    - ``linedelimiter``: what ends a record (default: any newline); a string that never
      occurs makes each whole file one record.
    - ``files_per_partition``: several files per partition (not with ``blocksize``).
    - ``include_path``: records are ``(line, path)``.
    - ``collection=False``: a list of ``Delayed`` partitions instead of a bag.

    A missing file raises ``FileNotFoundError`` naming it; a glob matching nothing raises
    ``ValueError("No files found", urlpath)`` as Dask does.

    >>> import oxidask.bag as db, json, tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> with open(os.path.join(d, "a.json"), "w") as f:
    ...     _ = f.write('{"x": 1}\\n{"x": 2}\\n')
    >>> db.read_text(os.path.join(d, "*.json")).map(json.loads).pluck("x").sum().compute()
    3
    """
    if storage_options:
        raise ValueError("storage_options are for remote filesystems, which oxidask.bag does not read yet")
    if blocksize is not None and files_per_partition is not None:
        raise ValueError("Only one of blocksize or files_per_partition can be set")
    if isinstance(blocksize, str):
        blocksize = parse_bytes(blocksize)
    if blocksize is not None and int(blocksize) <= 0:
        raise ValueError(f"blocksize must be a positive number of bytes, not {blocksize!r}")
    if linedelimiter is not None and not isinstance(linedelimiter, str):
        raise TypeError(f"linedelimiter must be a string, not {type(linedelimiter).__name__}")
    if linedelimiter == "":
        linedelimiter = None
    paths = _expand(urlpath)
    token = tokenize([_file_id(p) for p in paths], blocksize, compression, encoding, errors,
                     linedelimiter, files_per_partition, include_path)
    name = f"read-text-{token}"
    parts = []
    if blocksize is None:
        read = _task_fn(_read_file)
        calls = [(p, _compression_of(p, compression), encoding, errors, linedelimiter, include_path)
                 for p in paths]
        if files_per_partition is None:
            parts = [read(*c, dask_key_name=(name, i)) for i, c in enumerate(calls)]
        else:
            group = _task_fn(_read_files)
            parts = [
                group(calls[s : s + files_per_partition], dask_key_name=(name, i))
                for i, s in enumerate(range(0, len(calls), int(files_per_partition)))
            ]
    else:
        blocksize = int(blocksize)
        read = _task_fn(_read_block)
        delimiter = (linedelimiter or "\n").encode(encoding)
        for p in paths:
            if _is_url(p):
                raise ValueError(f"blocksize= reads local files only; use blocksize=None for {p!r}")
            if _compression_of(p, compression):
                raise ValueError(
                    f"Cannot do chunked reads on compressed files ({p!r}). To read, set blocksize=None"
                )
            size = os.path.getsize(p)
            for offset in range(0, max(size, 1), blocksize):
                parts.append(read(p, offset, blocksize, delimiter, encoding, errors, linedelimiter,
                                  include_path, dask_key_name=(name, len(parts))))
    if not collection:
        return parts
    return Bag._new(parts, name)


def _url_lines(url):
    with _urlopen(url) as r:
        return list(r)


def from_url(urls):
    """A bag of the lines (``bytes``, endings kept) of web pages, one partition per URL
    (Dask's ``from_url``).

    A URL that cannot be fetched raises ``urllib.error.URLError`` (``HTTPError`` for an
    error status) when the bag is computed.
    """
    if isinstance(urls, str):
        urls = [urls]
    urls = list(urls)
    if not urls:
        raise ValueError("from_url needs at least one URL")
    import uuid

    name = f"from_url-{uuid.uuid4().hex}"  # pages change: never the same key twice, as Dask
    fetch = _task_fn(_url_lines)
    return Bag._new([fetch(u, dask_key_name=(name, i)) for i, u in enumerate(urls)], name)


def _read_files(calls):
    out = []
    for c in calls:
        out.extend(_read_file(*c))
    return out


def _output_paths(path, n, name_function):
    if isinstance(path, (list, tuple)):
        paths = [os.fspath(p) for p in path]
        if len(paths) != n:
            raise ValueError(f"to_textfiles got {len(paths)} paths for a bag of {n} partitions")
        return paths
    path = os.path.expanduser(os.fspath(path))
    if _is_url(path):
        _check_protocol(path)
        if not path.lower().startswith("file://"):
            raise ValueError(f"to_textfiles writes local files only, not {path!r}")
        path = path[len("file://"):]
    name_function = name_function or str
    if "*" in path:
        if path.count("*") > 1:
            raise ValueError(f"to_textfiles: the path {path!r} may hold only one '*'")
        return [path.replace("*", name_function(i)) for i in range(n)]
    return [os.path.join(path, f"{name_function(i)}.part") for i in range(n)]


def _write_partition(data, path, compression, encoding, last_endline):
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    mode = "wb" if encoding is None else "wt"
    if compression:
        kw = {} if encoding is None else {"encoding": encoding}
        f = _COMPRESSIONS[compression](path, mode, **kw)
    else:
        f = open(path, mode) if encoding is None else open(path, mode, encoding=encoding)
    endline = b"\n" if encoding is None else "\n"
    with f:
        started = False
        for d in data:
            if started:
                f.write(endline)
            started = True
            if encoding is None and isinstance(d, str):
                d = d.encode()
            elif encoding is not None and isinstance(d, bytes):
                d = d.decode(encoding)
            f.write(d)
        if last_endline:
            f.write(endline)
    return None


def to_textfiles(b, path, name_function=None, compression="infer", encoding=system_encoding, compute=True,
                 storage_options=None, last_endline=False, **kwargs):
    """Writes bag ``b`` as text files, one per partition, one record (a string) per line.

    ``path`` is a directory (files ``0.part``, ``1.part``, ...), a pattern with one ``*``
    (replaced by ``name_function(i)``, default ``str(i)``), or a list of paths, one per
    partition. Names ending in ``.gz``/``.bz2``/``.xz`` are compressed (``compression=
    "infer"``). Returns the paths written; ``compute=False`` returns one ``Delayed`` per
    file instead. Keywords go to ``compute`` (``scheduler=``...).

    >>> import oxidask.bag as db, tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> paths = db.from_sequence(["a", "b", "c"], npartitions=2).to_textfiles(os.path.join(d, "*.txt"))
    >>> [os.path.basename(p) for p in paths]
    ['0.txt', '1.txt']
    >>> db.read_text(os.path.join(d, "*.txt")).compute()
    ['a\\n', 'b', 'c']
    """
    if storage_options:
        raise ValueError("storage_options are for remote filesystems, which oxidask.bag does not write yet")
    paths = _output_paths(path, b.npartitions, name_function)
    name = f"to-textfiles-{tokenize(b, paths, compression, encoding, last_endline)}"
    write = _task_fn(_write_partition)
    parts = [
        write(part, p, _compression_of(p, compression), encoding, last_endline, dask_key_name=(name, i))
        for i, (part, p) in enumerate(zip(b._parts, paths))
    ]
    if not compute:
        return parts
    Bag._new(parts, name).compute(**kwargs)
    return paths
