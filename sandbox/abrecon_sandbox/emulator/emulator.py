"""Start and stop the emulator on loopback, and what the pipeline should end up with."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterable
from datetime import datetime
from types import TracebackType
from typing import Any, Self, cast

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from .config import EmulatorConfig
from .dataset import Dataset
from .guard import RESET_FLAG
from .lwa import LWA_PATH
from .pdfs import PdfCache
from .ratelimit import RateLimiter
from .server import create_app
from .state import Credentials, ServerState

HOST = "127.0.0.1"


class _Server(ThreadedWSGIServer):
    """Threaded WSGI server that can drop its open keep-alive connections on stop."""

    def __init__(self, app: Any) -> None:
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(HOST, 0, app, handler=_QuietHandler)

    def drop_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.open_connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _QuietHandler(WSGIRequestHandler):
    """No access log; tracks its connection so stop() can close it; closes it after an injected reset."""

    def setup(self) -> None:
        super().setup()
        server = cast(_Server, self.server)
        with server.connections_lock:
            server.open_connections.add(self.connection)

    def finish(self) -> None:
        server = cast(_Server, self.server)
        with server.connections_lock:
            server.open_connections.discard(self.connection)
        super().finish()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None

    def run_wsgi(self) -> None:
        super().run_wsgi()
        # An injected reset: end this connection now, or the unread request body would be
        # parsed as the next request.
        if getattr(self, "environ", {}).get(RESET_FLAG):
            self.close_connection = True


class Emulator:
    """An Amazon Business API emulator (LWA, Reconciliation, Document API) on 127.0.0.1."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.dataset = Dataset(self.config)
        self.pdfs = PdfCache(self.dataset.documents, self.config.profile)
        self._credentials = Credentials.for_seed(self.config.seed)
        self.limiter = RateLimiter(speed=self.config.speed)
        self.state = ServerState(self.config, self.dataset, self.pdfs, self._credentials, self.limiter)
        self.payments = self.state.payments  # what getBatchInvoicePaymentDetails answers for each invoice
        self.app = create_app(self.state)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ----- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Serve on an ephemeral loopback port in a background thread."""
        if self._server is not None:
            raise RuntimeError("emulator already started")
        server = _Server(self.app)
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="ab-emulator", daemon=True
        )
        thread.start()
        self._server, self._thread = server, thread

    def stop(self) -> None:
        """Stop serving, close the socket and every open connection."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.drop_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ----- addresses and credentials --------------------------------------------------

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT (only while started)."""
        if self._server is None:
            raise RuntimeError("emulator not started")
        return f"http://{HOST}:{self._server.socket.getsockname()[1]}"

    @property
    def lwa_url(self) -> str:
        """The LWA token endpoint on this emulator."""
        return self.base_url + LWA_PATH

    @property
    def credentials(self) -> dict[str, str]:
        """client_id, client_secret and refresh_token the emulator accepts."""
        return self._credentials.as_dict()

    # ----- what the pipeline should end up with ---------------------------------------

    def expected_documents(self) -> dict[str, list[tuple[str, bytes]]]:
        """invoiceNumber -> [(file name, PDF bytes)] of a report without documentType."""
        return {n: self.pdfs.files(self.dataset.report_documents(n, None)) for n in sorted(self.invoice_numbers())}

    def invoice_numbers(self) -> set[str]:
        """STANDARD invoices of shipments in the window: the ones a report is requested for."""
        return self.dataset.invoice_numbers()

    def line_item_count(self) -> int:
        """Distinct order line items (orderId, orderLineItemId, shipmentId) in the window."""
        return self.dataset.line_item_count()

    def stats(self) -> dict[str, Any]:
        """{"apiCalls": {operation: n}, "throttled429": n, "throttled429ByOperation": {operation: n},
        "faultsInjected": {fault kind: n}}; injected 429s count as throttled too."""
        calls, throttled = self.limiter.snapshot()
        return {
            "apiCalls": calls,
            "throttled429": sum(throttled.values()),
            "throttled429ByOperation": throttled,
            "faultsInjected": self.state.injector.injected(),
        }

    def affected_invoices(self) -> dict[str, str]:
        """Invoices the fault profile changes for good: invoiceNumber -> fault kind.

        report-fatal (every report FATAL), report-cancelled, report-stuck, or
        bad-document:<variant>; ``faults.RECOVERABLE_DOCUMENT_FAULTS`` lists the variants
        a careful pipeline still stores.
        """
        return self.state.injector.affected_invoices()

    def issued_access_tokens(self) -> list[str]:
        """Every LWA access token this emulator has issued, revoked and expired ones included (log scans)."""
        with self.state.lock:
            return list(self.state.issued_tokens)

    def deliberate_inconsistencies(self) -> dict[str, str]:
        """JP invoices broken on purpose (jp_inconsistent_invoices): invoiceNumber -> what is wrong."""
        return dict(self.dataset.inconsistencies)

    # ----- faults on demand -----------------------------------------------------------

    def expire_access_tokens(self) -> None:
        """Invalidate every access token issued so far (next API call answers 401)."""
        self.state.expire_access_tokens()

    def age_reports(self) -> None:
        """Every report made so far is past Amazon's retention: getReport answers 404 (the aged-reports profile)."""
        self.state.injector.record("report-aged", self.state.age_reports())

    def refuse(self, operations: Iterable[str], status: int = 403) -> None:
        """Answer these operations with `status` whatever the access token (403: the app lacks the role);
        status 0 lifts the refusal."""
        with self.state.lock:
            for operation in operations:
                if status:
                    self.state.refusals[operation] = status
                else:
                    self.state.refusals.pop(operation, None)

    def ship_unshipped(self, listed_again_at: datetime | None = None) -> int:
        """Ship what had not shipped yet (before a later run): its line items get their shipmentId, its invoices
        exist; with ``listed_again_at`` the updated transactions are listed again in that moment's feed.
        Returns how many line items shipped."""
        return self.dataset.ship_unshipped(listed_again_at)

    def served_line_items(self, since: float = 0.0) -> set[tuple[str, str, str, str]]:
        """Every transaction line item getTransactions answered with since ``since`` (time.monotonic()), once
        each: (transactionId, orderId, orderLineItemId, shipmentId or "")."""
        with self.state.lock:
            return {identity for at, identity in self.state.served if at >= since}

    def drain(self, operation: str) -> None:
        """Empty one operation's rate-limit bucket (next call answers 429)."""
        self.limiter.drain(operation)
