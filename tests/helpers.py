"""Helpers the tests share: sample events and handlers loaded the way Lambda loads them."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
EVENTS = ROOT / "events"


class FakeContext:
    """The Lambda context fields Powertools and the handlers read; the remaining time counts down from 300 s."""

    memory_limit_in_mb = 512
    aws_request_id = "req-1"

    def __init__(self, function_name: str = "test", timeout_seconds: float = 300.0) -> None:
        self.function_name = function_name
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the timeout."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def worker_pool_for(
    tmp_path: Path, body: str, env: dict[str, str] | None = None, speed: float = 1.0, timeout_seconds: int = 30
) -> tuple[Any, Any]:
    """A sandbox WorkerPool serving one function whose app.py is body: (pool, its FunctionSpec)."""
    from abrecon_sandbox.aws.lambdas import FunctionSpec, WorkerPool

    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "app.py").write_text(body)
    spec = FunctionSpec(
        logical_id="TestFunction",
        name="test-function",
        arn="arn:aws:lambda:us-east-1:123456789012:function:test-function",
        code_dir=code,
        handler="app.lambda_handler",
        environment={},
        timeout_seconds=timeout_seconds,
        memory_mb=128,
    )
    base = {"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1", "AWS_REGION": "us-east-1"}
    pool = WorkerPool([spec], base, tmp_path / "logs", function_env={"TestFunction": env or {}}, speed=speed)
    return pool, spec


def load_event(name: str) -> dict[str, Any]:
    """A sample event from events/ (the same files `sam local invoke -e` takes)."""
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


def load_handler(function_dir: str) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """Import functions/<function_dir>/app.py as Lambda would and return its handler."""
    path = ROOT / "functions" / function_dir / "app.py"
    spec = importlib.util.spec_from_file_location(f"handler_{function_dir.replace('-', '_')}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler: Callable[[dict[str, Any], Any], dict[str, Any]] = module.lambda_handler
    return handler


def template_stack(**parameters: str) -> tuple[dict[str, Any], Any, Any]:
    """The template, a Stack with its default parameters (overridden by `parameters`) and placeholder physical ids
    (`<LogicalId>`, `arn:aws:s3:::<LogicalId>` for the bucket), and a Resolver over them: resolve without moto."""
    from abrecon_sandbox.aws.stack import Resolver, Stack, load_template

    template = load_template(TEMPLATE)
    defaults = {name: str(p.get("Default", "")) for name, p in template["Parameters"].items()}
    stack = Stack(name="abrecon", root=ROOT, parameters={**defaults, **parameters})
    for logical_id, resource in template["Resources"].items():
        stack.refs[logical_id] = f"<{logical_id}>"
        is_bucket = resource["Type"] == "AWS::S3::Bucket"
        stack.attributes[(logical_id, "Arn")] = f"arn:aws:s3:::<{logical_id}>" if is_bucket else f"<{logical_id}.Arn>"
    return template, stack, Resolver(stack, template.get("Conditions", {}), template.get("Mappings", {}))


def template_environment(**parameters: str) -> dict[str, str]:
    """The functions' Globals environment as CloudFormation would resolve it for these parameters."""
    template, _, resolver = template_stack(**parameters)
    variables: dict[str, Any] = template["Globals"]["Function"]["Environment"]["Variables"]
    return {name: str(value) for name, value in resolver.resolve(variables).items()}


def stored_summary(aws: Any, execution: dict[str, Any]) -> dict[str, Any]:
    """The run's whole summary from S3: the execution's output carries only its counts (payloads stay small)."""
    counts = json.loads(execution["output"])
    body = aws.client("s3").get_object(Bucket=aws.stack.output("DocumentBucket"), Key=counts["summaryKey"])["Body"]
    summary: dict[str, Any] = json.loads(body.read())
    return summary


@contextmanager
def local_aws_for(emulator: Any, log_dir: Path, speed: float = 1.0, **parameters: str) -> Iterator[Any]:
    """moto with the template's resources pointed at the emulator, the LWA secret filled in; stopped on exit.
    speed: the Lambda workers' Amazon clock (amazon_clock.py), as the sandbox run gives it."""
    from abrecon_sandbox.aws.local_aws import LocalAws

    defaults = {"ApiEndpoint": emulator.base_url, "LwaEndpoint": emulator.lwa_url, "PollSeconds": "1", "MaxPolls": "30"}
    aws = LocalAws(TEMPLATE, defaults | parameters, log_dir, speed=speed)
    aws.start()
    try:
        aws.client("secretsmanager").put_secret_value(
            SecretId=aws.stack.output("LwaSecret"), SecretString=json.dumps(emulator.credentials)
        )
        yield aws
    finally:
        aws.stop()


@contextmanager
def function_environment(local_aws: Any, monkeypatch: Any, logical_id: str) -> Iterator[None]:
    """This process gets exactly the environment the template gives one function, pointed at local AWS; the
    cached settings, runtime and parameters are dropped on entry and exit so each test builds its own."""
    from aws_lambda_powertools.utilities import parameters

    from abrecon import runs
    from abrecon.runtime import get_runtime
    from abrecon.settings import get_settings
    from abrecon_sandbox.aws.local_aws import CREDENTIALS
    from abrecon_sandbox.aws.stack import REGION

    def clear_caches() -> None:
        get_settings.cache_clear()
        get_runtime.cache_clear()
        runs._stepfunctions.cache_clear()
        parameters.clear_caches()

    spec = local_aws.stack.functions[logical_id]
    for name, value in {
        **spec.environment,
        **CREDENTIALS,
        "AWS_ENDPOINT_URL": local_aws.endpoint_url,
        "AWS_DEFAULT_REGION": REGION,
        "POWERTOOLS_TRACE_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    clear_caches()
    try:
        yield
    finally:
        clear_caches()


def window_of(emulator: Any) -> dict[str, str]:
    """The execution input for the emulator's whole data window."""
    return {"from": emulator.config.window_start.isoformat(), "to": emulator.config.window_end.isoformat()}


def start_execution(aws: Any, name: str, run_input: dict[str, Any]) -> str:
    """Start the stack's state machine; returns the execution's ARN."""
    arn: str = aws.client("stepfunctions").start_execution(
        stateMachineArn=aws.stack.output("ReconcileStateMachine"), name=name, input=json.dumps(run_input)
    )["executionArn"]
    return arn


def wait_for_execution(aws: Any, arn: str, deadline: float = 240) -> dict[str, Any]:
    """describe_execution once the execution has ended; fails the test after `deadline` seconds."""
    sfn = aws.client("stepfunctions")
    ends = time.monotonic() + deadline
    while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < ends, "execution did not end"
        time.sleep(0.25)
    result: dict[str, Any] = described
    return result


@contextmanager
def kept_sandbox_run(options: Any) -> Iterator[tuple[int, Any, io.StringIO]]:
    """`abrecon sandbox run` once, its local AWS and emulator kept running for inspection: (exit code, the
    SandboxRun, what it printed); both are stopped on exit."""
    from abrecon_sandbox.run.orchestration import run_sandbox

    out = io.StringIO()
    kept: list[Any] = []
    code = run_sandbox(options, out=out, keep=kept)
    run = kept[0]
    try:
        yield code, run, out
    finally:
        run.aws.stop()
        if run.emulator:
            run.emulator.stop()
