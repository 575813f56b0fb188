"""A development server for feed folders: static files with ETag, for tests and demos.

Production feeds sit on any static web server or CDN; this one only adds what the sync
client relies on there: a strong ETag per file, If-None-Match (304), Content-Length, and
no-cache on index.json (the only file that changes; the others are named by sequence).
"""

from __future__ import annotations

import logging
import shutil
import urllib.parse
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from portique.revocation.format import INDEX_NAME

log = logging.getLogger("portique.revocation.serve")


class FeedRequestHandler(BaseHTTPRequestHandler):
    """GET and HEAD of the files under the server's folder; nothing else."""

    server_version = "portique-feed"
    protocol_version = "HTTP/1.1"
    root: ClassVar[Path] = Path(".")

    def do_GET(self) -> None:
        self.serve_file(body=True)

    def do_HEAD(self) -> None:
        self.serve_file(body=False)

    def resolve(self) -> Path | None:
        """The file a request path names inside the root, or None."""
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        parts = [p for p in path.split("/") if p]
        if not parts or any(p in (".", "..") or p.startswith(".") for p in parts):
            return None
        root = self.root.resolve()
        target = root.joinpath(*parts).resolve()
        if root not in target.parents or not target.is_file():
            return None
        return target

    def serve_file(self, *, body: bool) -> None:
        target = self.resolve()
        if target is None:
            self.send_error(HTTPStatus.NOT_FOUND, "no such feed file")
            return
        try:
            handle = target.open("rb")
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND, "no such feed file")
            return
        with handle:
            info = target.stat()
            etag = f'"{info.st_mtime_ns:x}-{info.st_size:x}"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(HTTPStatus.NOT_MODIFIED)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "application/json" if target.name == INDEX_NAME
                             else "application/gzip")
            self.send_header("Content-Length", str(info.st_size))
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", formatdate(info.st_mtime, usegmt=True))
            self.send_header("Cache-Control", "no-cache" if target.name == INDEX_NAME
                             else "public, max-age=31536000, immutable")
            self.end_headers()
            if body:
                shutil.copyfileobj(handle, self.wfile)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("feed server: %s " + format, self.address_string(), *args)


def make_server(directory: Path, *, host: str = "127.0.0.1", port: int = 0,
                handler: type[FeedRequestHandler] = FeedRequestHandler) -> ThreadingHTTPServer:
    """A server for `directory` (not yet serving: call serve_forever). Port 0 picks one."""
    bound = type("BoundFeedRequestHandler", (handler,), {"root": Path(directory)})
    server = ThreadingHTTPServer((host, port), bound)
    server.daemon_threads = True
    return server
