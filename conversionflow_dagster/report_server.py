"""Serve the reports folder read-only, so the UI's report links open in the browser.

Browsers refuse ``file://`` links from an ``http://`` page, and a file path means nothing on
another machine; the report asset therefore links ``<base URL>/<path under report.output_dir>``
when ``CONVERSIONFLOW_REPORTS_URL`` names where that folder is served. ``conversionflow ui``
serves it itself on 127.0.0.1 and sets the variable for the processes it starts; a deployment
serves the folder with its own web server or proxy and sets the variable to that public URL.

The server is the standard library's ``http.server``: static files from one folder, GET and
HEAD only (any other method is answered 501), paths normalised so ``..`` cannot leave the
folder, and anything that resolves outside it (a symbolic link) answered 404. That is all a
folder of self-contained HTML reports needs, with nothing to install or keep up to date; it is
not meant to face the internet (put a real web server in front for that).
"""

from __future__ import annotations

import functools
import os
import urllib.parse
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPORTS_URL_ENV = "CONVERSIONFLOW_REPORTS_URL"
LOOPBACK = "127.0.0.1"


class _ReportsHandler(SimpleHTTPRequestHandler):
    """Files and listings of one folder; nothing that resolves outside it."""

    def send_head(self):  # an open file to copy, or None when answered already
        target = Path(self.translate_path(self.path)).resolve()
        if not target.is_relative_to(Path(self.directory).resolve()):
            self.send_error(HTTPStatus.NOT_FOUND)
            return None
        return super().send_head()

    def end_headers(self) -> None:
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the terminal belongs to ``dagster dev``'s output."""


class ReportServer(ThreadingHTTPServer):
    """A read-only HTTP server for ``folder`` on 127.0.0.1 (``port`` 0: any free port)."""

    daemon_threads = True

    def __init__(self, folder: Path, port: int) -> None:
        handler = functools.partial(_ReportsHandler, directory=str(folder))
        super().__init__((LOOPBACK, port), handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


def report_url(path: Path, served: Path) -> str:
    """The link to a report file: under ``CONVERSIONFLOW_REPORTS_URL`` when it is set and the
    file lies in the ``served`` folder, else the file's own ``file://`` URI."""
    base = os.environ.get(REPORTS_URL_ENV)
    path, served = path.resolve(), served.resolve()
    if not base or not path.is_relative_to(served):
        return path.as_uri()
    relative = urllib.parse.quote(path.relative_to(served).as_posix())
    return f"{base.rstrip('/')}/{relative}"
