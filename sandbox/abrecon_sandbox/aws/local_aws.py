"""Local AWS: moto's server on loopback with Step Functions execution on, Lambda answered by worker processes."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
import requests
from moto.core.config import default_user_config
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from abrecon_sandbox.aws.faults import S3WriteFaults
from abrecon_sandbox.aws.iam import (
    Enforcer,
    IamGate,
    build_enforcer,
    make_certificate,
    moto_bucket_policy_check_off,
    state_machine_identity,
)
from abrecon_sandbox.aws.lambdas import LambdaRouter, WorkerPool
from abrecon_sandbox.aws.meter import StepFunctionsMeter
from abrecon_sandbox.aws.quotas import StepFunctionsQuotas
from abrecon_sandbox.aws.stack import REGION, Stack, build_stack

# moto's documented dummy credentials, valid only against the local moto server.
CREDENTIALS = {  # nosec B105
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
# The sandbox's own calls (stack creation, audit, tests) are the administrator's: the IAM gate lets them pass.
_ADMIN = {
    "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
    "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    "aws_session_token": CREDENTIALS["AWS_SESSION_TOKEN"],
}
# Functions run with a fresh, empty TMPDIR and HOME of their own, which must still be empty at the end: the
# download holds report documents, which must never reach a disk unencrypted (FIELD-NOTES), not even /tmp.
DISKLESS_FUNCTIONS = ("DownloadDocumentFunction",)


class LocalAws:
    """moto on 127.0.0.1, the template's resources created in it, and its Lambda functions served locally.

    moto's ASL interpreter calls AWS through http://localhost:$MOTO_PORT, so this sets MOTO_PORT in-process;
    only one LocalAws can run per process.
    """

    def __init__(
        self,
        template: Path,
        parameters: dict[str, str],
        log_dir: Path,
        stack_name: str = "abrecon",
        max_workers_per_function: int = 4,  # each worker costs a second of CPU to start: on 2 cores, few do more
        function_env: Mapping[str, Mapping[str, str]] | None = None,
        s3_faults: S3WriteFaults | None = None,
        speed: float = 1.0,  # the run's speed factor: Lambda's Timeout is kept on Amazon's clock (amazon_clock.py)
    ) -> None:
        self._template = template
        self._speed = speed
        self._parameters = parameters
        self._log_dir = log_dir
        self._stack_name = stack_name
        self._max_workers = max_workers_per_function
        self._function_env = {k: dict(v) for k, v in (function_env or {}).items()}  # logical id -> extra variables
        self.s3_faults = s3_faults
        self._scratch: Path | None = None
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.pool: WorkerPool | None = None
        self.stack: Stack | None = None
        self.endpoint_url = ""  # plain HTTP: the administrator's (the sandbox itself, tests, the CLI)
        self.tls_endpoint_url = ""  # what the functions and the state machine call, so aws:SecureTransport is real
        self.ca_bundle: Path | None = None
        self.iam: Enforcer | None = None
        self._tls_server: BaseWSGIServer | None = None
        self._identity = ExitStack()
        self._tls_dir: Path | None = None
        self.meter = StepFunctionsMeter()
        self.quotas = StepFunctionsQuotas(self.meter)
        self.router: LambdaRouter | None = None

    def __enter__(self) -> LocalAws:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start moto, create the stack from the template, and get ready to serve its functions."""
        default_user_config["stepfunctions"] = {"execute_state_machine": True}
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        self.meter.install()
        self.quotas.install()
        try:
            self._serve()
        except BaseException:
            self.stop()  # a half-started sandbox must not leave moto's interpreter patched (meter, quotas)
            raise

    def _serve(self) -> None:
        """Start the server, build the stack, and ready the Lambda workers (start's body)."""
        for name, value in CREDENTIALS.items():
            os.environ.setdefault(name, value)
        router = LambdaRouter(DomainDispatcherApplication(create_backend_app))
        self._server = make_server("127.0.0.1", 0, router, threaded=True)
        port = self._server.server_address[1]
        os.environ["MOTO_PORT"] = str(port)
        self.endpoint_url = f"http://127.0.0.1:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)
        self._thread.start()
        self._scratch = Path(tempfile.mkdtemp(prefix="abrecon-sandbox-"))
        # Beside the scratch directory, not in it: disk_report lists every file left there.
        self._tls_dir = Path(tempfile.mkdtemp(prefix="abrecon-sandbox-tls-"))
        self.ca_bundle, tls_key = make_certificate(self._tls_dir)
        self._tls_server = make_server(
            "127.0.0.1", 0, router, threaded=True, ssl_context=(str(self.ca_bundle), str(tls_key))
        )
        self.tls_endpoint_url = f"https://127.0.0.1:{self._tls_server.server_address[1]}"
        threading.Thread(target=self._tls_server.serve_forever, name="moto-tls", daemon=True).start()
        # moto keeps its state per process: start every sandbox from an empty account.
        requests.post(f"{self.endpoint_url}/moto-api/reset", timeout=10).raise_for_status()
        self._identity.enter_context(moto_bucket_policy_check_off())
        self.stack = build_stack(self._template, self._stack_name, self._parameters, self.endpoint_url)
        # Every request of a function or the state machine is evaluated against its role as SAM deploys it (iam.py).
        self.iam = build_enforcer(self._template, self.stack)
        router.iam = IamGate(self.iam)
        machine = next(p.caller for p in self.iam.principals.values() if p.caller not in self.stack.functions)
        self._identity.enter_context(
            state_machine_identity(self.iam.key_for(machine), self.tls_endpoint_url, self.ca_bundle)
        )
        worker_env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108  # nosec B108 # only when HOME is unset
            "LANG": "C.UTF-8",
            "TZ": "UTC",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.tls_endpoint_url,
            "AWS_CA_BUNDLE": str(self.ca_bundle),
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            # X-Ray has no local daemon; everything else Powertools does stays on.
            "POWERTOOLS_TRACE_DISABLED": "true",
            "PYTHONDONTWRITEBYTECODE": "1",  # Lambda's code is read-only; the workers' disk-write audit sees the rest
            **CREDENTIALS,
        }
        function_env = {k: dict(v) for k, v in self._function_env.items()}
        for logical_id in self.stack.functions:  # each function signs as its own role
            function_env.setdefault(logical_id, {})["AWS_ACCESS_KEY_ID"] = self.iam.key_for(logical_id)
        for logical_id in DISKLESS_FUNCTIONS:
            for name in ("TMPDIR", "HOME"):
                directory = self._scratch / logical_id / name.lower()
                directory.mkdir(parents=True)
                function_env.setdefault(logical_id, {})[name] = str(directory)
        self.pool = WorkerPool(
            self.stack.functions.values(),
            worker_env,
            self._log_dir,
            self._max_workers,
            function_env=function_env,
            speed=self._speed,
        )
        router.pool = self.pool
        router.s3_faults = self.s3_faults
        self.router = router

    def client(self, service: str) -> Any:
        """A boto3 client for the local AWS, as the account's administrator (whatever the process's environment)."""
        return boto3.client(service, region_name=REGION, endpoint_url=self.endpoint_url, **_ADMIN)  # type: ignore[call-overload]

    def client_as(self, caller: str, service: str, *, tls: bool = True) -> Any:
        """A boto3 client signing as a function's (or the state machine's) role, as that caller's requests are
        evaluated; tls=False calls the plain-HTTP endpoint (aws:SecureTransport false)."""
        assert self.iam and self.ca_bundle, "start() first"
        return boto3.client(  # type: ignore[call-overload]
            service,
            region_name=REGION,
            endpoint_url=self.tls_endpoint_url if tls else self.endpoint_url,
            verify=str(self.ca_bundle),
            aws_access_key_id=self.iam.key_for(caller),
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def resource(self, service: str) -> Any:
        """A boto3 resource for the local AWS, as the account's administrator."""
        return boto3.resource(service, region_name=REGION, endpoint_url=self.endpoint_url, **_ADMIN)  # type: ignore[call-overload]

    def disk_report(self) -> dict[str, object]:
        """What the functions wrote to disk: files opened for writing per function (the workers' audit hook), and
        anything left in the fresh TMPDIR and HOME of DISKLESS_FUNCTIONS."""
        left = sorted(str(p) for p in self._scratch.rglob("*") if p.is_file()) if self._scratch else []
        writes = dict(self.pool.stats.disk_writes) if self.pool else {}
        return {"writes": writes, "leftOnDisk": left}

    def stop(self) -> None:
        """Stop the workers and the server."""
        if self.pool:
            self.pool.stop()
        self._identity.close()
        for server in (self._server, self._tls_server):
            if server:
                server.shutdown()
                server.server_close()
        if self._thread:
            self._thread.join(timeout=10)
        self.meter.uninstall()
        self.quotas.uninstall()
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
        if self._tls_dir:
            shutil.rmtree(self._tls_dir, ignore_errors=True)
            self._tls_dir = None
