"""Serve a site written by :mod:`.build` on 127.0.0.1.

``make_server(site, port)`` serves it on 127.0.0.1 with ``Cross-Origin-Opener-Policy: same-origin`` and
``Cross-Origin-Embedder-Policy: require-corp``, so the page is cross-origin isolated and WASM can use threads. It
serves only files whose real path (symbolic links resolved) is inside the site folder, and answers a malformed
request path with 400.
"""

from __future__ import annotations

import http.server
import os
import re
import sys
import urllib.parse
from pathlib import Path

from ..errors import WebError


class SiteHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with cross-origin isolation (WASM threads) and the right MIME types; no directory listings."""

    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".wasm": "application/wasm",
        ".tflite": "application/octet-stream",
        ".json": "application/json",
    }

    def end_headers(self) -> None:
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def list_directory(self, path):  # noqa: D102 - no listings
        self.send_error(404)
        return None

    def send_head(self):
        """Only well-formed paths (else 400), and only files whose real path is inside the site (else 404): a
        symbolic link in the site that points out of it is never followed."""
        if not well_formed_path(self.path):
            self.send_error(400, "malformed request path")
            return None
        path = self.translate_path(self.path)
        if os.path.isdir(path) and self.path.split("?", 1)[0].split("#", 1)[0].endswith("/"):
            path = os.path.join(path, "index.html")  # what the base class serves for a folder
        if not inside_folder(path, self.directory):
            self.send_error(404)
            return None
        return super().send_head()

    def log_message(self, format, *args) -> None:  # quiet: the CLI prints one line per start
        pass


_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def well_formed_path(target: str) -> bool:
    """An HTTP request target that a static site can answer: an absolute path, every ``%`` followed by two hex
    digits, UTF-8 once decoded, and no control characters (NUL included)."""
    path = target.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/") or _PERCENT.search(target):
        return False
    try:
        decoded = urllib.parse.unquote(path, errors="strict")
    except UnicodeDecodeError:
        return False
    return not any(ord(ch) < 32 or ord(ch) == 127 for ch in decoded)


def inside_folder(path: str | Path, folder: str | Path) -> bool:
    """Whether ``path``'s real path (every symbolic link resolved) is ``folder``'s or inside it."""
    real, root = os.path.realpath(path), os.path.realpath(folder)
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


class SiteServer(http.server.ThreadingHTTPServer):
    """A threading server whose handlers never print tracebacks: a browser that hangs up mid-file (a closed tab, a
    cancelled download) is normal and silent; any other failure of one request is one line on stderr."""

    def handle_error(self, request, client_address) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):  # reset, broken pipe, aborted: the client left
            return
        sys.stderr.write(f"nafnet-litert serve: a request from {client_address[0]} failed: {error!r}\n")


def make_server(site: str | Path, port: int = 8000, handler=SiteHandler) -> SiteServer:
    """A server for ``site`` on 127.0.0.1:``port`` (0 = any free port), not yet serving."""
    import functools

    site = Path(site)
    if not (site / "index.html").is_file() or not (site / "nafnet.js").is_file():
        raise WebError(f"{site} is not a site written by 'nafnet-litert web' (no index.html / nafnet.js)")
    if not 0 <= port <= 65535:
        raise WebError(f"--port must be between 0 and 65535, got {port}")
    try:
        return SiteServer(("127.0.0.1", port), functools.partial(handler, directory=str(site)))
    except OSError as e:
        raise WebError(f"cannot listen on 127.0.0.1:{port} ({e.strerror})") from None
