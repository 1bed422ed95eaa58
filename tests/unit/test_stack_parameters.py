"""The sandbox's stack creation refuses what CloudFormation refuses before creating anything: a parameter value (or
default) that breaks AllowedValues, AllowedPattern, Min/MaxLength, Min/MaxValue or is not a number; and a schedule
that EventBridge Scheduler could not create. Each refusal names the parameter and the rule."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import TEMPLATE

from abrecon_sandbox.aws.parameters import ParameterError, check_parameters
from abrecon_sandbox.aws.stack import TemplateError, _check_schedule, build_stack, load_template
from abrecon_sandbox.run.options import SandboxOptions, scaled_rate_limits

DECLARED: dict[str, Any] = load_template(TEMPLATE)["Parameters"]
DEFAULTS = {name: str(p["Default"]) for name, p in DECLARED.items()}
NOWHERE = "http://127.0.0.1:1"  # nothing listens: a check that ran after creating something would fail to connect


def _refusal(**overrides: str) -> ParameterError:
    with pytest.raises(ParameterError) as caught:
        check_parameters(DECLARED, DEFAULTS | overrides)
    return caught.value


def test_the_templates_own_defaults_pass() -> None:
    check_parameters(DECLARED, DEFAULTS)


def test_every_parameter_has_a_default_and_every_constrained_one_says_why() -> None:
    rules = ("AllowedValues", "AllowedPattern", "MinLength", "MaxLength", "MinValue", "MaxValue")
    for name, spec in DECLARED.items():
        assert "Default" in spec, name
        if any(rule in spec for rule in rules):
            assert len(spec.get("ConstraintDescription", "")) > 10, name
        if spec["Type"] == "Number":
            assert "MinValue" in spec and "MaxValue" in spec, f"{name} has no bounds"
        else:
            assert "AllowedValues" in spec or "MaxLength" in spec, f"{name} has no bounds"


@pytest.mark.parametrize(
    ("parameter", "value", "rule"),
    [
        ("AmazonBusinessRegion", "FE", "AllowedValues"),
        ("RequestPdfs", "yes", "AllowedValues"),
        ("ScheduleTimeZone", "New York", "AllowedPattern"),
        ("ScheduleTimeZone", "America/New_York; rm", "AllowedPattern"),
        ("ScheduleExpression", "every day at 6", "AllowedPattern"),
        ("ScheduleExpression", "cron(0 6 * * ?)", "AllowedPattern"),  # five fields: Scheduler wants six
        ("ScheduleExpression", "rate(0 days)", "AllowedPattern"),
        ("FinanceEmail", "finance", "AllowedPattern"),
        ("OperationsEmail", "ops@example.com, cto@example.com", "AllowedPattern"),
        ("FinanceEmail", "f" * 250 + "@example.com", "MaxLength"),
        ("LwaEndpoint", "http://api.amazon.com/auth/o2/token", "AllowedPattern"),
        ("ApiEndpoint", "http://127.0.0.1.example.com/", "AllowedPattern"),
        ("MarketplaceId", "atvpdkikx0der", "AllowedPattern"),  # the whole value must match, not a part
        ("ScheduleTimeZone", "A" * 51, "MaxLength"),
        ("PollSeconds", "0", "MinValue"),
        ("PollSeconds", "3601", "MaxValue"),
        ("MaxPolls", "1001", "MaxValue"),
        ("MaxPolls", "ten", "Type"),
        ("LookbackDays", "91", "MaxValue"),
        ("ScheduleFlexibleWindowMinutes", "-1", "MinValue"),
    ],
)
def test_a_value_cloudformation_would_refuse_is_refused_naming_the_parameter_and_rule(
    parameter: str, value: str, rule: str
) -> None:
    refusal = _refusal(**{parameter: value})
    assert [(v.parameter, v.rule) for v in refusal.violations] == [(parameter, rule)]
    message = str(refusal)
    assert parameter in message and rule in message
    if "ConstraintDescription" in DECLARED[parameter]:
        assert DECLARED[parameter]["ConstraintDescription"] in message


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("ScheduleTimeZone", "America/Argentina/Buenos_Aires"),
        ("ScheduleTimeZone", "Etc/GMT+5"),
        ("ScheduleTimeZone", "Asia/Tokyo"),
        ("ScheduleExpression", "cron(0/15 6-8 ? * MON-FRI *)"),
        ("ScheduleExpression", "rate(12 hours)"),
        ("ScheduleExpression", "at(2026-12-01T06:00:00)"),
        ("FinanceEmail", "finance@example.co.jp"),
        ("OperationsEmail", ""),
        ("MaxPolls", "1000"),
        ("PollSeconds", "3600"),
        ("ApiEndpoint", ""),
        ("ApiEndpoint", "https://sandbox.na.business-api.amazon.com"),
        ("ApiEndpoint", "http://127.0.0.1:8080"),  # plain http to a loopback host: the client's own rule
        ("LwaEndpoint", "http://localhost:8080/auth/o2/token"),
    ],
)
def test_values_cloudformation_takes_pass(parameter: str, value: str) -> None:
    check_parameters(DECLARED, DEFAULTS | {parameter: value})


def test_every_refused_value_is_reported_at_once() -> None:
    refusal = _refusal(MaxPolls="0", FinanceEmail="nobody")
    assert {(v.parameter, v.rule) for v in refusal.violations} == {
        ("MaxPolls", "MinValue"),
        ("FinanceEmail", "AllowedPattern"),
    }


def test_min_length_and_a_missing_value_are_checked_too() -> None:
    """The template declares no MinLength and defaults everything; the rules hold for a template that does."""
    declared = {"Name": {"Type": "String", "MinLength": 3}, "Required": {"Type": "String"}}
    with pytest.raises(ParameterError) as caught:
        check_parameters(declared, {"Name": "ab"})
    assert {(v.parameter, v.rule) for v in caught.value.violations} == {("Name", "MinLength"), ("Required", "Default")}


@pytest.mark.parametrize(
    ("overrides", "rule"),
    [
        ({"MaxPolls": "5000"}, "MaxValue"),
        ({"ScheduleTimeZone": "Tokyo time"}, "AllowedPattern"),
        ({"FinanceEmail": "x" * 300}, "MaxLength"),
        ({"AmazonBusinessRegion": "FE"}, "AllowedValues"),
    ],
)
def test_stack_creation_refuses_before_creating_anything(overrides: dict[str, str], rule: str) -> None:
    with pytest.raises(ParameterError, match=rule) as caught:
        build_stack(TEMPLATE, "abrecon", overrides, NOWHERE)
    assert isinstance(caught.value, TemplateError)  # what the sandbox's callers already catch


def test_a_schedule_scheduler_could_not_create_is_refused() -> None:
    _check_schedule("StartRunFunction.Daily", {"Name": "abrecon-daily", "ScheduleExpressionTimezone": "Asia/Tokyo"})
    with pytest.raises(TemplateError, match="IANA"):
        _check_schedule("StartRunFunction.Daily", {"ScheduleExpressionTimezone": "Mars/Olympus_Mons"})
    with pytest.raises(TemplateError, match="schedule name"):
        _check_schedule("StartRunFunction.Daily", {"Name": "a" * 60 + "-daily"})


def test_the_sandbox_command_reports_a_refused_parameter_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`abrecon sandbox run --max-polls 5000`: the stack's refusal is a one-line error, not a traceback."""
    import abrecon_sandbox.run.orchestration
    from abrecon_cli.main import main

    def refuse(options: Any, **_: Any) -> int:
        check_parameters(DECLARED, DEFAULTS | {"MaxPolls": str(options.max_polls)})
        return 0

    monkeypatch.setattr(abrecon_sandbox.run.orchestration, "run_sandbox", refuse)
    assert main(["sandbox", "run", "--max-polls", "5000"]) == 2
    error = capsys.readouterr().err
    assert "MaxPolls" in error and "MaxValue" in error and "Traceback" not in error


@pytest.mark.parametrize("speed", [1.0, 60.0, 600.0, 3000.0])
def test_the_sandboxs_own_parameters_are_ones_cloudformation_takes(speed: float) -> None:
    """What `abrecon sandbox run` and the tests give the stack (emulator on loopback, scaled rates and waits)."""
    options = SandboxOptions(speed=speed, max_polls=15)
    check_parameters(
        DECLARED,
        DEFAULTS
        | {
            "ApiEndpoint": "http://127.0.0.1:41234",
            "LwaEndpoint": "http://127.0.0.1:41234/auth/o2/token",
            "FatalRetrySeconds": str(options.fatal_retry_seconds),
            "PollSeconds": str(options.effective_poll_seconds),
            "MaxPolls": str(options.max_polls),
            "ApiRateLimits": scaled_rate_limits(speed),
        },
    )
