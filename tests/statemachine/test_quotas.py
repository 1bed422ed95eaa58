"""Step Functions' quotas in moto's interpreter (quotas.py), on small state machines of Pass, Choice and Map states:
a Distributed Map's aggregated result over 256 KiB fails the execution with States.DataLimitExceeded whatever
ResultPath says, which States.ALL does not catch; an execution or a Map child past its history quota fails, and a
failed child fails its Map. Each check is shown to bite: moto alone lets the same executions succeed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from abrecon_sandbox.aws import quotas as quotas_module
from abrecon_sandbox.aws.meter import StepFunctionsMeter
from abrecon_sandbox.aws.quotas import StepFunctionsQuotas

ROLE = "arn:aws:iam::123456789012:role/quota-test"
BIG = "x" * 400  # one child's output: 500 children make ~200 KB, 700 make ~280 KB


def _map(items: int, result_path_null: bool, catch: bool = False) -> dict[str, Any]:
    state: dict[str, Any] = {
        "Type": "Map",
        "ItemsPath": "$.items",
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Child",
            "States": {"Child": {"Type": "Pass", "Result": {"padding": BIG}, "End": True}},
        },
        "MaxConcurrency": 20,
        "End": True,
    }
    if result_path_null:
        state["ResultPath"] = None
    if catch:
        state["Catch"] = [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]
    definition: dict[str, Any] = {"StartAt": "Map", "States": {"Map": state}}
    if catch:
        definition["States"]["Caught"] = {"Type": "Succeed"}
    return definition


def _loop(iterations: int) -> dict[str, Any]:
    """A counter loop: two states and four history events an iteration."""
    return {
        "StartAt": "Count",
        "States": {
            "Count": {
                "Type": "Pass",
                "Parameters": {"n.$": "States.MathAdd($.n, 1)"},
                "Next": "Done?",
            },
            "Done?": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.n", "NumericGreaterThanEquals": iterations, "Next": "End"}],
                "Default": "Count",
            },
            "End": {"Type": "Succeed"},
        },
    }


@pytest.fixture
def sfn() -> Iterator[Any]:
    """moto in this process with its interpreter on."""
    import boto3

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):  # type: ignore[typeddict-unknown-key]
        yield boto3.client("stepfunctions", region_name="us-east-1")


@pytest.fixture
def enforced() -> Iterator[StepFunctionsQuotas]:
    """The quotas installed (with the meter they count history on), removed afterwards."""
    meter = StepFunctionsMeter()
    meter.install()
    checks = StepFunctionsQuotas(meter)
    checks.install()
    try:
        yield checks
    finally:
        checks.uninstall()
        meter.uninstall()


def _execute(sfn: Any, definition: dict[str, Any], run_input: dict[str, Any]) -> dict[str, Any]:
    name = f"q{time.monotonic_ns()}"
    arn = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps(run_input))["executionArn"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        described: dict[str, Any] = sfn.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.2)
    raise AssertionError("the execution did not end")


@pytest.mark.parametrize("result_path_null", [False, True], ids=["ResultPath-default", "ResultPath-null"])
def test_a_map_result_over_256_kib_fails_the_execution_and_states_all_does_not_catch_it(
    sfn: Any, enforced: StepFunctionsQuotas, result_path_null: bool
) -> None:
    described = _execute(sfn, _map(700, result_path_null, catch=True), {"items": list(range(700))})
    assert described["status"] == "FAILED"
    assert described.get("error") == "States.DataLimitExceeded"
    (violation,) = enforced.violations
    assert violation["kind"] == "mapResult" and violation["bytes"] > quotas_module.PAYLOAD_QUOTA_BYTES
    assert enforced.max_map_result_bytes == violation["bytes"]


def test_a_map_result_under_the_quota_passes(sfn: Any, enforced: StepFunctionsQuotas) -> None:
    described = _execute(sfn, _map(500, result_path_null=True), {"items": list(range(500))})
    assert described["status"] == "SUCCEEDED", described
    assert enforced.violations == []
    assert 200_000 < enforced.max_map_result_bytes < quotas_module.PAYLOAD_QUOTA_BYTES


def test_without_the_checks_moto_lets_the_oversized_map_result_through(sfn: Any) -> None:
    described = _execute(sfn, _map(700, result_path_null=True), {"items": list(range(700))})
    assert described["status"] == "SUCCEEDED"


def test_an_execution_past_its_history_quota_fails(
    sfn: Any, enforced: StepFunctionsQuotas, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(quotas_module, "HISTORY_QUOTA_EVENTS", 200)  # 25,000 takes minutes in moto
    assert _execute(sfn, _loop(30), {"n": 0})["status"] == "SUCCEEDED"  # ~125 events
    assert enforced.violations == []
    described = _execute(sfn, _loop(100), {"n": 0})  # ~400 events
    assert described["status"] == "FAILED"
    assert [v["kind"] for v in enforced.violations] == ["history"]
    assert enforced.violations[0]["events"] >= 200


def test_a_map_child_past_its_history_quota_fails_the_map_and_the_execution(
    sfn: Any, enforced: StepFunctionsQuotas, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(quotas_module, "HISTORY_QUOTA_EVENTS", 200)
    child = _loop(100)
    definition = {
        "StartAt": "Map",
        "States": {
            "Map": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemSelector": {"n": 0},
                "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, **child},
                "ResultPath": None,
                "End": True,
            }
        },
    }
    described = _execute(sfn, definition, {"items": [1, 2]})
    assert described["status"] == "FAILED"
    assert described.get("error") == "States.ExceedToleratedFailureThreshold"
    assert {v["kind"] for v in enforced.violations} == {"history"}
