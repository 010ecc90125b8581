"""Fixtures for the seed-document tests (tests/seeds/test_*.py).

- ``client``: a distributed client on ``LocalCluster(n_workers=2, threads_per_worker=1)``, one
  per test module, closed (client, then cluster) when the module's tests are done.
- ``local_web``: a small web site on 127.0.0.1 served by ``http.server`` from a thread of the
  test process. It stands in for the internet sites the documents use (the crawler's
  http://holdenkarau.com/, https://httpbin.org/get, www.scalingpythonml.com:80): the tests may
  not use the network. It serves a few HTML pages and an httpbin-like ``/get`` endpoint that
  echoes the query string as JSON, and records every request path it receives.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest

# Pages of the local stand-in for a personal home page like http://holdenkarau.com/: a home page
# with links to other pages of the site, an absolute link and a non-web (mailto:) link.
PAGES = {
    "/": (
        "<html><head><title>Holden's home page</title></head><body>\n"
        "<h1>Hello world from a local test site</h1>\n"
        "<p>Scaling Python with Dask, Spark and other friends.</p>\n"
        '<a href="/books.html">Books</a>\n'
        '<a href="/talks.html">Talks</a>\n'
        '<a href="{base}/blog.html">Blog</a>\n'
        '<a href="mailto:someone@example.com">Mail</a>\n'
        "</body></html>\n"
    ),
    "/books.html": (
        "<html><body><h1>Books</h1>\n"
        '<a href="/">Home</a>\n'
        "<p>Scaling Python with Dask</p></body></html>\n"
    ),
    "/talks.html": (
        "<html><body><h1>Talks</h1>\n"
        '<a href="/">Home</a>\n'
        "<p>Dask talks</p></body></html>\n"
    ),
    "/blog.html": (
        "<html><body><h1>Blog</h1>\n"
        '<a href="/">Home</a>\n'
        "<p>Posts about distributed computing</p></body></html>\n"
    ),
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        server = self.server
        with server.log_lock:
            server.log.append(self.path)
        parts = urlsplit(self.path)
        if parts.path == "/get":
            # Like https://httpbin.org/get: the query arguments echoed back as JSON.
            body = json.dumps(
                {
                    "args": dict(parse_qsl(parts.query)),
                    "headers": dict(self.headers.items()),
                    "origin": self.client_address[0],
                    "url": f"{server.base_url}{self.path}",
                }
            ).encode()
            content_type = "application/json"
            status = 200
        elif parts.path in server.pages:
            body = server.pages[parts.path].encode("ascii")
            content_type = "text/html; charset=utf-8"
            status = 200
        else:
            body = b"not found"
            content_type = "text/plain"
            status = 404
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # keep the test output quiet
        pass


class LocalWeb:
    """The running site: ``url`` (no trailing slash), ``host``, ``port``, ``pages`` (path ->
    HTML as served) and ``requests()`` (the paths requested so far, in order)."""

    def __init__(self, server):
        self._server = server
        self.host, self.port = server.server_address[:2]
        self.url = server.base_url
        self.pages = server.pages

    def requests(self):
        with self._server.log_lock:
            return list(self._server.log)


@pytest.fixture(scope="session")
def local_web():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    server.base_url = f"http://{host}:{port}"
    server.pages = {path: html.format(base=server.base_url) for path, html in PAGES.items()}
    server.log = []
    server.log_lock = threading.Lock()
    thread = threading.Thread(target=server.serve_forever, name="seed-local-web", daemon=True)
    thread.start()
    try:
        yield LocalWeb(server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def client():
    from oxidask.distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
