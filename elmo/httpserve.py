"""A small static HTTP server on 127.0.0.1, for the offline mirror in tests, CI and the Makefile."""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # signature from the base class
        pass


@contextlib.contextmanager
def serve_directory(directory: str | Path, port: int = 0, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``directory`` read-only; yields the base URL (ending in '/'). Port 0 picks a free one."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="elmo-httpserve", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
