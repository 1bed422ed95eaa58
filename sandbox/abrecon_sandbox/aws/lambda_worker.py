"""One Lambda execution environment: a process that imports a function's handler once and serves invocations.

Started by `lambdas.WorkerPool` with exactly the environment the template gives the function. It reads
length-prefixed JSON requests on stdin and answers on a private copy of stdout; the handler's own prints and
logs go to stderr, which the pool sends to the function's log file.

Sandbox-only, outside the handler (the product has no such code path): an audit hook notes every file the
handler opens for writing and every directory it makes (answered as `diskWrites`), and with
ABRECON_SANDBOX_CRASH_AFTER_PUT (invoice numbers; the handler-crash fault profile) the process kills itself right
after a successful S3 PutObject of a documents/ key of one of those invoices.

Lambda's Timeout is kept on Amazon's clock (amazon_clock.py: wall time with the pacer's sped-up waits replaced by
what Amazon's rate limits would have made them, SANDBOX_SPEED): the context's `get_remaining_time_in_millis()`
counts down on it, and a watchdog thread ends an invocation that runs out as Lambda does: the answer is
`Sandbox.Timedout` ("Task timed out after N.NN seconds") and the execution environment goes away (this process
exits; the next invocation is a cold start).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import struct
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from typing import IO, Any

from abrecon_sandbox.aws.amazon_clock import RATE_LIMITS_ENV, SPEED_ENV, AmazonClock, Mark, amazon_limits

HEADER = struct.Struct(">I")
CRASH_ENV = "ABRECON_SANDBOX_CRASH_AFTER_PUT"  # aws_faults.CRASH_ENV (not imported: keep this module light)
WATCHDOG_INTERVAL_SECONDS = 0.02
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_disk_writes: list[str] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    """Note writes to the file system: open() for writing, os.open with write flags, mkdir, rename."""
    if event == "open":
        path, mode, flags = (*args, None, None, None)[:3]
        if isinstance(path, int):  # an already open descriptor (pipes, the protocol's stdout copy)
            return
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and bool(flags & _WRITE_FLAGS)
        )
        if writing and str(path) != os.devnull:
            _disk_writes.append(f"open {path}")
    elif event in ("os.mkdir", "os.rename", "os.symlink", "os.link"):
        _disk_writes.append(f"{event} {args[0]}")


def _crash_after_documents_put(victims: set[str]) -> None:
    """handler-crash: die (SIGKILL) right after a documents/ object of a victim invoice was written to S3."""
    import boto3  # the worker's boto3 default session: the handler's clients inherit its event handlers

    def remember_key(params: dict[str, Any], **_: Any) -> None:
        _crash_state["key"] = str(params.get("Key", ""))

    def crash(http_response: Any, **_: Any) -> None:
        parts = _crash_state.get("key", "").split("/")
        if len(parts) == 4 and parts[0] == "documents" and parts[2] in victims and http_response.status_code == 200:
            sys.stderr.write(f"sandbox handler-crash: killing this process after writing {_crash_state['key']}\n")
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    session = boto3.DEFAULT_SESSION
    assert session is not None
    session.events.register("before-parameter-build.s3.PutObject", remember_key)
    session.events.register("after-call.s3.PutObject", crash)


_crash_state: dict[str, str] = {}


def read_message(stream: IO[bytes]) -> dict[str, Any] | None:
    """Read one length-prefixed JSON message, or None at end of stream."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (length,) = HEADER.unpack(header)
    message: dict[str, Any] = json.loads(stream.read(length))
    return message


def write_message(stream: IO[bytes], message: dict[str, Any]) -> None:
    """Write one length-prefixed JSON message and flush it."""
    body = json.dumps(message).encode()
    stream.write(HEADER.pack(len(body)) + body)
    stream.flush()


@dataclass
class FakeLambdaContext:
    """The parts of the Lambda context object handlers and Powertools read."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    timeout_seconds: float
    clock: AmazonClock
    started: Mark

    def amazon_elapsed(self) -> float:
        """Seconds of Amazon time the invocation has used."""
        return self.clock.elapsed(self.started)

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's timeout, on Amazon's clock."""
        return max(0, int((self.timeout_seconds - self.amazon_elapsed()) * 1000))


class Answerer:
    """Writes each invocation's one answer: the handler's, or the watchdog's timeout, whichever comes first."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._open: str | None = None  # the request id awaiting its answer

    def start(self, request_id: str) -> None:
        """An invocation begins."""
        with self._lock:
            self._open = request_id

    def answer(self, request_id: str, message: dict[str, Any]) -> bool:
        """Send the answer of request_id unless it was answered already; True if this one was sent."""
        with self._lock:
            if self._open != request_id:
                return False
            self._open = None
            write_message(self._stream, message)
            return True


def _watch(context: FakeLambdaContext, answerer: Answerer, done: threading.Event) -> None:
    """End the invocation (and this execution environment) once its Amazon time has run out."""
    while not done.wait(WATCHDOG_INTERVAL_SECONDS):
        if context.amazon_elapsed() < context.timeout_seconds:
            continue
        message = f"Task timed out after {context.timeout_seconds:.2f} seconds"
        payload = json.dumps({"errorType": "Sandbox.Timedout", "errorMessage": message})
        if answerer.answer(context.aws_request_id, {"ok": False, "timedOut": True, "payload": payload}):
            now, start = context.clock.mark(), context.started
            sys.stderr.write(
                f"{context.aws_request_id} {message} (on Amazon's clock at x{context.clock.speed:g}: "
                f"{now.wall - start.wall:.2f} s of wall time, {now.paced - start.paced:.2f} s of it in the pacer, "
                f"{now.rate_limited - start.rate_limited:.2f} s of Amazon's rate-limit waits)\n"
            )
            sys.stderr.flush()
            os._exit(0)  # Lambda discards the environment of a timed-out invocation
        return


def _amazon_clock(speed: float) -> AmazonClock:
    """The invocations' clock; a handler that paces its requests (abrecon.pacing) is counted at Amazon's rates:
    AB_API_RATE_LIMITS (sped up by the sandbox) divided by the speed, or Amazon's own defaults when it is unset."""
    pacing = sys.modules.get("abrecon.pacing")
    if pacing is None:
        return AmazonClock(speed)
    configured = os.environ.get(RATE_LIMITS_ENV)
    if configured:
        limits = amazon_limits(configured, speed)
    else:
        from abrecon.settings import DEFAULT_RATE_LIMITS

        limits = amazon_limits(DEFAULT_RATE_LIMITS, 1.0)
    clock = AmazonClock(speed, limits)
    clock.install(pacing.Pacer, pacing.STEP_PACED)
    return clock


def main() -> None:
    """Serve invocations until stdin closes."""
    protocol_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # handler output joins the log, never the protocol
    code_dir, handler_spec = sys.argv[1], sys.argv[2]
    answerer = Answerer(protocol_out)
    sys.addaudithook(_audit)
    victims = {n for n in os.environ.get(CRASH_ENV, "").split(",") if n}
    if victims:
        _crash_after_documents_put(victims)
    module_name, _, attribute = handler_spec.rpartition(".")
    sys.path.insert(0, code_dir)
    handler = getattr(importlib.import_module(module_name), attribute)
    clock = _amazon_clock(float(os.environ.get(SPEED_ENV, "1")))
    function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
    timeout = float(os.environ.get("SANDBOX_FUNCTION_TIMEOUT", "300"))
    stdin = sys.stdin.buffer
    while (request := read_message(stdin)) is not None:
        context = FakeLambdaContext(
            function_name=function_name,
            function_version="$LATEST",
            invoked_function_arn=request["arn"],
            memory_limit_in_mb=int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]),
            aws_request_id=str(uuid.uuid4()),
            log_group_name=f"/aws/lambda/{function_name}",
            log_stream_name="sandbox",
            timeout_seconds=timeout,
            clock=clock,
            started=clock.start_invocation(),
        )
        answerer.start(context.aws_request_id)
        done = threading.Event()
        threading.Thread(target=_watch, args=(context, answerer, done), daemon=True).start()
        started = time.perf_counter()
        try:
            result = handler(json.loads(request["payload"]), context)
            answer = {"ok": True, "payload": json.dumps(result)}
        except Exception as exc:  # noqa: BLE001 - every handler failure must reach the state machine, as Lambda does
            answer = {
                "ok": False,
                "payload": json.dumps(
                    {
                        "errorType": type(exc).__name__,
                        "errorMessage": str(exc),
                        "stackTrace": traceback.format_exception(exc),
                    }
                ),
            }
            traceback.print_exc()
        done.set()
        answer["durationMs"] = (time.perf_counter() - started) * 1000
        answer["amazonSeconds"] = context.amazon_elapsed()
        answer["diskWrites"] = _disk_writes[:]
        _disk_writes.clear()
        answerer.answer(context.aws_request_id, answer)


if __name__ == "__main__":
    main()
