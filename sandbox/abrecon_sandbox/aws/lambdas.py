"""Lambda for the sandbox: moto's Lambda needs Docker, so invocations are answered here by worker processes.

Each function gets its own pool of worker processes, started on demand like Lambda's execution environments,
each with exactly the environment the template gives the function plus what the Lambda runtime itself sets.
"""

from __future__ import annotations

import json
import re
import subprocess  # nosec B404 # runs our own interpreter only (the Lambda worker processes)
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from abrecon_sandbox.aws.amazon_clock import SPEED_ENV
from abrecon_sandbox.aws.faults import S3WriteFaults, ServiceFaults
from abrecon_sandbox.aws.lambda_worker import read_message, write_message

AUTH_SCOPE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")
INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")
# The worker ends a timed-out invocation itself, on Amazon's clock (amazon_clock.py); this much wall time past the
# Timeout (its wall time, divided by the speed when that is under 1) the pool kills a worker that could not (stuck
# in C code). Amazon's clock runs behind the wall only by pacer waits longer than Amazon's, capped at 60 s each.
BACKSTOP_GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class FunctionSpec:
    """A function as the template declares it, with its environment already resolved."""

    logical_id: str
    name: str
    arn: str
    code_dir: Path
    handler: str
    environment: dict[str, str]
    timeout_seconds: int
    memory_mb: int


class FunctionTimeout(Exception):
    """The handler ran past the function's timeout."""


class FunctionCrash(Exception):
    """The worker process died during the invocation (Lambda: Runtime.ExitError)."""


class Worker:
    """One worker process: one invocation at a time, like one Lambda execution environment."""

    def __init__(
        self,
        spec: FunctionSpec,
        base_env: dict[str, str],
        log_dir: Path,
        extra_env: Mapping[str, str] | None = None,
        speed: float = 1.0,
    ) -> None:
        self.spec = spec
        self._backstop = spec.timeout_seconds / min(1.0, speed) + BACKSTOP_GRACE_SECONDS
        env = {
            **base_env,
            **spec.environment,
            **(extra_env or {}),  # the sandbox's own: a fresh TMPDIR and HOME, fault injection
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "SANDBOX_FUNCTION_TIMEOUT": str(spec.timeout_seconds),
            SPEED_ENV: repr(speed),
        }
        log_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(log_dir / f"{spec.name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        self._process = subprocess.Popen(  # noqa: S603  # nosec B603 # our own interpreter and module
            [sys.executable, "-m", "abrecon_sandbox.aws.lambda_worker", str(spec.code_dir), spec.handler],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
        )

    def invoke(self, payload: bytes) -> dict[str, Any]:
        """Run one invocation; one that outlives the timeout on Amazon's clock ends its worker, as Lambda does."""
        assert self._process.stdin and self._process.stdout
        write_message(self._process.stdin, {"arn": self.spec.arn, "payload": payload.decode() or "{}"})
        answer: list[dict[str, Any] | None] = []
        reader = threading.Thread(
            target=lambda: answer.append(read_message(self._process.stdout)),  # type: ignore[arg-type]
            daemon=True,
        )
        reader.start()
        reader.join(self._backstop)
        if not reader.is_alive() and answer and answer[0] is None:  # end of stream: the process died
            self.stop()
            raise FunctionCrash(f"Runtime exited with error: exit status {self._process.returncode}")
        if reader.is_alive() or not answer or answer[0] is None:
            self._process.kill()
            self.stop()
            raise FunctionTimeout(f"Task timed out after {self.spec.timeout_seconds:.2f} seconds")
        if answer[0].get("timedOut"):  # the worker's watchdog answered and its process is ending
            self.stop()
            raise FunctionTimeout(json.loads(answer[0]["payload"])["errorMessage"])
        return answer[0]

    @property
    def alive(self) -> bool:
        """Whether the process still runs."""
        return self._process.poll() is None

    def stop(self) -> None:
        """End the process and close its log."""
        if self._process.stdin:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._log.close()


@dataclass
class InvocationStats:
    """What the sandbox measures about Lambda: invocations and billed duration per function."""

    invocations: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    gb_seconds: float = 0.0
    cold_starts: int = 0
    crashes: Counter[str] = field(default_factory=Counter)  # invocations whose process died (Runtime.ExitError)
    timeouts: Counter[str] = field(default_factory=Counter)  # invocations ended at the Timeout (Sandbox.Timedout)
    # Files a handler opened for writing (or directories it made), per function: the audit hook of lambda_worker.
    disk_writes: dict[str, list[str]] = field(default_factory=dict)


class WorkerPool:
    """Idle and busy workers per function; a new worker starts when all of a function's workers are busy."""

    def __init__(
        self,
        functions: Iterable[FunctionSpec],
        base_env: dict[str, str],
        log_dir: Path,
        max_workers_per_function: int = 8,
        function_env: Mapping[str, Mapping[str, str]] | None = None,
        speed: float = 1.0,
    ) -> None:
        self._specs = {spec.arn: spec for spec in functions}
        self._speed = speed  # the sandbox's speed factor: the workers keep Lambda's Timeout on Amazon's clock
        self._function_env = dict(function_env or {})  # logical id -> the sandbox's extra variables
        self._specs.update({spec.name: spec for spec in self._specs.values()})
        self._base_env = base_env
        self._log_dir = log_dir
        self._idle: dict[str, list[Worker]] = {spec.name: [] for spec in self._specs.values()}
        self._running: Counter[str] = Counter()
        self._limit = max_workers_per_function
        self._lock = threading.Condition()
        self._all: list[Worker] = []
        self.stats = InvocationStats()

    @property
    def base_env(self) -> dict[str, str]:
        """The environment every worker starts from (before the function's own)."""
        return dict(self._base_env)

    def spec_for(self, name_or_arn: str) -> FunctionSpec | None:
        """The function a name, an ARN, or a qualified ARN refers to."""
        return self._specs.get(name_or_arn) or self._specs.get(name_or_arn.split(":$")[0])

    def _acquire(self, spec: FunctionSpec) -> Worker:
        with self._lock:
            while True:
                idle = self._idle[spec.name]
                while idle:
                    worker = idle.pop()
                    if worker.alive:
                        return worker
                if self._running[spec.name] < self._limit:
                    self._running[spec.name] += 1
                    self.stats.cold_starts += 1
                    break
                self._lock.wait()
        worker = Worker(spec, self._base_env, self._log_dir, self._function_env.get(spec.logical_id), self._speed)
        with self._lock:
            self._all.append(worker)
        return worker

    def _release(self, worker: Worker) -> None:
        with self._lock:
            if worker.alive:
                self._idle[worker.spec.name].append(worker)
            else:
                self._running[worker.spec.name] -= 1
            self._lock.notify_all()

    def invoke(self, spec: FunctionSpec, payload: bytes) -> tuple[bool, bytes]:
        """Invoke the function; returns (succeeded, response payload) as Lambda's Invoke API would."""
        worker = self._acquire(spec)
        started = time.perf_counter()
        writes: list[str] = []
        try:
            answer = worker.invoke(payload)
            ok, body = bool(answer["ok"]), str(answer["payload"]).encode()
            writes = [str(w) for w in answer.get("diskWrites", [])]
        except FunctionTimeout as exc:
            ok, body = False, json.dumps({"errorType": "Sandbox.Timedout", "errorMessage": str(exc)}).encode()
            with self._lock:
                self.stats.timeouts[spec.name] += 1
        except FunctionCrash as exc:  # what Lambda answers when the runtime process dies mid-invocation
            ok, body = False, json.dumps({"errorType": "Runtime.ExitError", "errorMessage": str(exc)}).encode()
            with self._lock:
                self.stats.crashes[spec.name] += 1
        finally:
            self._release(worker)
        with self._lock:
            if writes:
                self.stats.disk_writes.setdefault(spec.name, []).extend(writes)
            self.stats.invocations[spec.name] += 1
            if not ok:
                self.stats.errors[spec.name] += 1
            # Lambda bills per millisecond of duration at the configured memory.
            self.stats.gb_seconds += (time.perf_counter() - started) * spec.memory_mb / 1024
        return ok, body

    def stop(self) -> None:
        """Stop every worker process."""
        with self._lock:
            workers, self._all = self._all, []
        for worker in workers:
            if worker.alive:
                worker.stop()


class LambdaRouter:
    """WSGI middleware in front of moto: answers Lambda Invoke itself and passes every other request on."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self._app = app
        self.pool: WorkerPool | None = None  # set once the stack's functions are known
        self.s3_faults: S3WriteFaults | None = None  # the s3-write-failure profile, when the sandbox runs it
        self.service_faults: ServiceFaults | None = None  # DynamoDB, KMS, Secrets Manager profiles
        # IAM as AWS evaluates it (iam.IamGate): None to pass a request on, or AWS's refusal (status, headers, body).
        self.iam: Callable[[dict[str, Any]], tuple[str, list[tuple[str, str]], bytes] | None] | None = None
        self.requests: Counter[str] = Counter()  # "service:action" -> AWS requests, for the cost estimate
        self._requests_lock = threading.Lock()

        # moto checks a DynamoDB condition and writes in two steps with no lock between them; DynamoDB makes each
        # write atomic. Serialising DynamoDB requests gives conditional writes their real meaning under concurrency.
        self._dynamodb_lock = threading.Lock()

    def _count(self, environ: dict[str, Any]) -> str:
        scope = AUTH_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        service = scope.group(1) if scope else "unsigned"
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        action = target.rsplit(".", 1)[-1] if target else environ.get("REQUEST_METHOD", "")
        with self._requests_lock:
            self.requests[f"{service}:{action}"] += 1
        return service

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Route one request."""
        service = self._count(environ)
        refused = self.iam(environ) if self.iam is not None else None
        if refused is not None:
            status, headers, body = refused
            start_response(status, headers)
            return [body]
        if service == "s3" and self.s3_faults is not None:
            faulty = self.s3_faults.serve(environ, start_response, self._app)
            if faulty is not None:
                return faulty
        faults = self.service_faults  # DynamoDB, KMS, Secrets Manager errors in each service's own shape
        faulty = faults.serve(environ, start_response, self._app, service, self._dynamodb_lock) if faults else None
        if faulty is not None:
            return faulty
        match = INVOKE_PATH.match(environ.get("PATH_INFO", ""))
        if service == "dynamodb":
            with self._dynamodb_lock:
                return list(self._app(environ, start_response))
        if environ.get("REQUEST_METHOD") != "POST" or match is None:
            result: Iterable[bytes] = self._app(environ, start_response)
            return result
        spec = self.pool.spec_for(unquote(match["name"])) if self.pool else None
        if spec is None or self.pool is None:
            body = json.dumps({"Type": "User", "message": f"Function not found: {match['name']}"}).encode()
            start_response(
                "404 Not Found",
                [
                    ("Content-Type", "application/json"),
                    ("x-amzn-ErrorType", "ResourceNotFoundException"),
                    ("Content-Length", str(len(body))),
                ],
            )
            return [body]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        payload = environ["wsgi.input"].read(length) if length else b""
        ok, body = self.pool.invoke(spec, payload)
        headers = [
            ("Content-Type", "application/json"),
            ("X-Amz-Executed-Version", "$LATEST"),
            ("Content-Length", str(len(body))),
        ]
        if not ok:
            headers.append(("X-Amz-Function-Error", "Unhandled"))
        start_response("200 OK", headers)
        return [body]
