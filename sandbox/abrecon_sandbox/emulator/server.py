"""The emulator's WSGI app: LWA, the Reconciliation, Document (Reports) and Payments APIs, presigned downloads.

One blueprint per API (lwa, reconciliation, document, payments); the checks every API call starts with are one
request hook (guard.py). Fault profiles (``faults``) hook in at three places: ``guard.guard`` (delays, revoked
tokens, extra 429s, 5xx), ``guard.finish`` (missing fields, cut-off JSON, the decision to drop the connection)
and ``_DropConnections`` (closes the socket instead of answering).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from flask import Flask

from . import guard
from .document import document
from .guard import RESET_FLAG
from .lwa import lwa
from .payments import payments
from .reconciliation import reconciliation
from .state import ServerState
from .web import STATE_KEY

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


def create_app(state: ServerState) -> Flask:
    """Build the Flask app serving ``state``."""
    app = Flask("abrecon_sandbox.emulator")
    app.wsgi_app = _DropConnections(app.wsgi_app)  # type: ignore[method-assign]
    app.extensions[STATE_KEY] = state
    guard.install(app)
    for blueprint in (lwa, reconciliation, payments, document):
        app.register_blueprint(blueprint)
    return app


class _DropConnections:
    """WSGI middleware: a request flagged with RESET_FLAG gets no answer, only a closed connection."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        captured: list[tuple[str, list[tuple[str, str]], Any]] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured.append((status, headers, exc_info))
            return _no_write

        body = self.app(environ, capture)
        if not environ.get(RESET_FLAG):
            status, headers, exc_info = captured[-1]
            start_response(status, headers, exc_info)
            return body
        close = getattr(body, "close", None)
        if close is not None:
            close()
        sock = environ.get("werkzeug.socket")
        if isinstance(sock, socket.socket):
            with suppress(OSError):
                # Linger 0: the close that follows sends a reset instead of a graceful FIN.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RDWR)
        # werkzeug treats ConnectionError as a dropped connection: nothing is written, nothing logged.
        raise ConnectionResetError("injected connection reset")


def _no_write(data: bytes) -> None:
    raise RuntimeError("the emulator's views return their bodies")
