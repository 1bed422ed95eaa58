"""`abrecon doctor` and `abrecon credentials set` against a "deployed" stack: the sandbox's moto and the emulator.

The stack is the one the sandbox registers in moto's CloudFormation (its Outputs are the resources' physical ids),
deployed with finance and operations e-mail subscriptions. Each failing case is a second stack registered next to
it whose Outputs differ in one place (another secret, topic, schedule or API host), or the emulator refusing an
operation as Amazon does for an app without the role, so every check is seen to fail on its own.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import local_aws_for, start_execution, wait_for_execution, window_of

from abrecon_cli.main import main
from abrecon_sandbox.aws.local_aws import LocalAws
from abrecon_sandbox.aws.stack import ACCOUNT_ID, REGION
from abrecon_sandbox.emulator import Emulator, EmulatorConfig

pytestmark = pytest.mark.e2e

FINANCE, OPERATIONS = "finance@example.com", "oncall@example.com"


@pytest.fixture(scope="module")
def local_aws(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAws]:
    """The sandbox's stack deployed with both e-mail subscriptions."""
    with local_aws_for(
        emulator, tmp_path_factory.mktemp("lambda-logs"), FinanceEmail=FINANCE, OperationsEmail=OPERATIONS
    ) as aws:
        yield aws


def _run(argv: list[str], stdin: str | None = None, monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[int, str]:
    """The command's exit code and everything it wrote (stdout and stderr)."""
    out = io.StringIO()
    if stdin is not None and monkeypatch is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(argv)
    return code, out.getvalue()


def _lines(text: str) -> dict[str, str]:
    """The doctor's lines by check name: {"stack": "✔ stack: ...", ...}."""
    found = {}
    for line in text.splitlines():
        if line[:2] in ("✔ ", "✘ ", "– ") and ":" in line:
            found[line[2:].split(":", 1)[0]] = line
    return found


def _variant(local_aws: LocalAws, name: str, **outputs: str | None) -> str:
    """A second stack registered in moto: the real one's Outputs with these changed (None: left out)."""
    assert local_aws.stack is not None
    values = {**local_aws.stack.outputs, **outputs}
    body = {
        "Resources": {"Outputs": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {key: {"Value": value} for key, value in values.items() if value is not None},
    }
    with warnings.catch_warnings():  # moto says it does not "support" the handle: it has nothing to create
        warnings.filterwarnings("ignore", message="Tried to parse AWS::CloudFormation::WaitConditionHandle")
        local_aws.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(body))
    return name


def _secret(local_aws: LocalAws, name: str, value: dict[str, str] | str) -> str:
    arn: str = local_aws.client("secretsmanager").create_secret(
        Name=name, SecretString=value if isinstance(value, str) else json.dumps(value)
    )["ARN"]
    return arn


def _another_schedule(local_aws: LocalAws, name: str, **settings: str) -> None:
    """A schedule like the deployed one, with these settings changed."""
    assert local_aws.stack is not None
    scheduler = local_aws.client("scheduler")
    deployed = scheduler.get_schedule(Name=local_aws.stack.outputs["ScheduleName"])
    scheduler.create_schedule(
        **{
            "Name": name,
            "ScheduleExpression": deployed["ScheduleExpression"],
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "Target": {"Arn": deployed["Target"]["Arn"], "RoleArn": deployed["Target"]["RoleArn"]},
            **settings,
        }
    )


def _stored(local_aws: LocalAws) -> dict[str, Any]:
    assert local_aws.stack is not None
    text = local_aws.client("secretsmanager").get_secret_value(SecretId=local_aws.stack.outputs["LwaSecretArn"])
    stored: dict[str, Any] = json.loads(text["SecretString"])
    return stored


def _no_value_of(credentials: dict[str, str], text: str) -> None:
    for key in ("client_secret", "refresh_token"):
        assert credentials[key] not in text, f"the {key} was printed"
    assert "Atzr|" not in text and "Atza|" not in text


# --- doctor ---------------------------------------------------------------------------------------------------


def test_doctor_passes_every_check_on_a_stack_set_up_right(
    local_aws: LocalAws, emulator: Emulator, operator_env: None
) -> None:
    code, out = _run(["doctor"])
    assert code == 0, out
    lines = _lines(out)
    assert set(lines) == {
        "stack",
        "LWA secret",
        "token exchange",
        "Reconciliation API",
        "Document API",
        "schedule",
        "finance subscriptions",
        "operations subscriptions",
        "last run",
    }, out
    assert all(line.startswith("✔") for line in lines.values()), out
    assert "next run" in lines["schedule"] and "cron(0 6 * * ? *)" in lines["schedule"]
    assert FINANCE in lines["finance subscriptions"] and OPERATIONS in lines["operations subscriptions"]
    assert "none yet: start the first backfill" in lines["last run"]
    assert out.rstrip().endswith("All checks passed.")
    _no_value_of(emulator.credentials, out)


def test_doctor_names_the_missing_stack_or_output_and_runs_nothing_that_needs_it(
    local_aws: LocalAws, operator_env: None
) -> None:
    code, out = _run(["doctor", "--stack", "no-such-stack"])
    assert code == 1
    lines = _lines(out)
    assert lines["stack"].startswith("✘ stack: no CloudFormation stack named 'no-such-stack' in us-east-1")
    assert all(line.startswith("– ") for name, line in lines.items() if name != "stack"), out
    code, out = _run(["doctor", "--stack", _variant(local_aws, "old-template", ScheduleName=None)])
    assert code == 1
    lines = _lines(out)
    assert "lacks the output(s) ScheduleName" in lines["stack"] and lines["stack"].startswith("✘")
    assert lines["schedule"].startswith("– schedule: not run")
    assert lines["token exchange"].startswith("✔") and lines["last run"].startswith("✔")


def test_doctor_names_an_empty_field_of_the_secret_without_printing_a_value(
    local_aws: LocalAws, emulator: Emulator, operator_env: None
) -> None:
    partial = {**emulator.credentials, "client_secret": " "}
    arn = _secret(local_aws, "doctor-partial-secret", partial)
    code, out = _run(["doctor", "--stack", _variant(local_aws, "partial-secret", LwaSecretArn=arn)])
    assert code == 1
    lines = _lines(out)
    assert lines["LWA secret"].startswith("✘") and "lacks a value for client_secret:" in lines["LWA secret"]
    assert "abrecon credentials set" in lines["LWA secret"]
    assert lines["token exchange"].startswith("– ") and lines["Reconciliation API"].startswith("– ")
    _no_value_of(emulator.credentials, out)
    arn = _secret(local_aws, "doctor-not-json", "client_id=abc")
    code, out = _run(["doctor", "--stack", _variant(local_aws, "not-json-secret", LwaSecretArn=arn)])
    assert code == 1 and "is not a JSON object" in _lines(out)["LWA secret"]
    missing = arn.rsplit(":", 1)[0] + ":no-such-secret-AbCdEf"
    code, out = _run(["doctor", "--stack", _variant(local_aws, "no-secret", LwaSecretArn=missing)])
    assert code == 1 and _lines(out)["LWA secret"].startswith("✘ LWA secret: could not read the secret")


def test_doctor_explains_invalid_grant(local_aws: LocalAws, emulator: Emulator, operator_env: None) -> None:
    revoked = {**emulator.credentials, "refresh_token": "Atzr|revoked-long-ago"}
    arn = _secret(local_aws, "doctor-revoked-token", revoked)
    code, out = _run(["doctor", "--stack", _variant(local_aws, "revoked-token", LwaSecretArn=arn)])
    assert code == 1
    line = _lines(out)["token exchange"]
    assert line.startswith("✘ token exchange: LWA answered invalid_grant: the refresh token was revoked")
    assert "transient outage" in line and "abrecon credentials set" in line
    assert _lines(out)["Reconciliation API"].startswith("– ")
    assert "revoked-long-ago" not in out


@pytest.mark.parametrize(
    ("check", "operation", "other"),
    [("Reconciliation API", "getTransactions", "Document API"), ("Document API", "getReports", "Reconciliation API")],
)
def test_doctor_says_the_app_lacks_the_role_on_403(
    local_aws: LocalAws, emulator: Emulator, operator_env: None, check: str, operation: str, other: str
) -> None:
    emulator.refuse([operation], 403)
    try:
        code, out = _run(["doctor"])
    finally:
        emulator.refuse([operation], 0)
    assert code == 1
    lines = _lines(out)
    assert lines[check].startswith(f"✘ {check}: {operation} failed (HTTP 403")
    assert "lacks the Business Purchase Reconciliation role" in lines[check]
    assert lines["token exchange"].startswith("✔") and lines[other].startswith("✔")  # each API checked on its own


def test_doctor_says_the_token_is_refused_on_401(local_aws: LocalAws, operator_env: None) -> None:
    # Another host that never issued the token (as an API host of another region answers): 401, then 401 again
    # with a fresh token.
    with Emulator(EmulatorConfig(seed=11, orders=1)) as elsewhere:
        stack = _variant(local_aws, "other-region-host", AmazonBusinessApiEndpoint=elsewhere.base_url)
        code, out = _run(["doctor", "--stack", stack])
        assert elsewhere.stats()["apiCalls"].get("getTransactions") == 2  # the client's retry with a fresh token
    assert code == 1
    line = _lines(out)["Reconciliation API"]
    assert line.startswith("✘ Reconciliation API: getTransactions failed (HTTP 401") and "another region's" in line
    assert _lines(out)["Document API"].startswith("✘ Document API: getReports failed (HTTP 401")


def test_doctor_fails_a_disabled_schedule(local_aws: LocalAws, operator_env: None) -> None:
    _another_schedule(local_aws, "doctor-disabled", State="DISABLED")
    code, out = _run(["doctor", "--stack", _variant(local_aws, "disabled-schedule", ScheduleName="doctor-disabled")])
    assert code == 1
    assert _lines(out)["schedule"].startswith("✘ schedule: doctor-disabled is DISABLED: no run starts on its own")
    code, out = _run(["doctor", "--stack", _variant(local_aws, "no-schedule", ScheduleName="doctor-deleted")])
    assert code == 1 and _lines(out)["schedule"].startswith("✘ schedule: could not read the schedule doctor-deleted")


def test_doctor_shows_the_next_run_in_the_schedules_time_zone(local_aws: LocalAws, operator_env: None) -> None:
    weekdays = {"ScheduleExpression": "cron(30 9 ? * MON-FRI *)", "ScheduleExpressionTimezone": "Asia/Tokyo"}
    _another_schedule(local_aws, "doctor-tokyo", **weekdays)
    code, out = _run(["doctor", "--stack", _variant(local_aws, "tokyo-schedule", ScheduleName="doctor-tokyo")])
    assert code == 0, out
    line = _lines(out)["schedule"]
    assert "cron(30 9 ? * MON-FRI *): next run " in line and " 09:30 JST (in " in line


def test_doctor_names_a_pending_confirmation_and_a_topic_nobody_hears(local_aws: LocalAws, operator_env: None) -> None:
    from moto.sns.models import sns_backends

    sns = local_aws.client("sns")
    silent = sns.create_topic(Name="doctor-silent")["TopicArn"]
    code, out = _run(["doctor", "--stack", _variant(local_aws, "silent-topic", FinanceTopicArn=silent)])
    assert code == 1
    line = _lines(out)["finance subscriptions"]
    assert line.startswith("✘ finance subscriptions: nobody is subscribed") and "FinanceEmail=ADDRESS" in line
    pending = sns.create_topic(Name="doctor-pending")["TopicArn"]
    sns.subscribe(TopicArn=pending, Protocol="email", Endpoint="new-oncall@example.com")
    # moto confirms every subscription at once; SNS lists one nobody confirmed with this SubscriptionArn.
    for subscription in sns_backends[ACCOUNT_ID][REGION].subscriptions.values():
        if subscription.topic.arn == pending:
            subscription.arn = "PendingConfirmation"
    code, out = _run(["doctor", "--stack", _variant(local_aws, "pending-topic", OperationsTopicArn=pending)])
    assert code == 1
    line = _lines(out)["operations subscriptions"]
    assert line.startswith("✘ operations subscriptions: pending confirmation: email new-oncall@example.com")
    assert _lines(out)["finance subscriptions"].startswith("✔")


# --- credentials set ------------------------------------------------------------------------------------------


def test_credentials_set_reads_json_on_stdin_verifies_then_stores(
    local_aws: LocalAws, emulator: Emulator, operator_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert local_aws.stack is not None
    secret_id = local_aws.stack.outputs["LwaSecretArn"]
    local_aws.client("secretsmanager").put_secret_value(
        SecretId=secret_id, SecretString='{"client_id": "", "client_secret": "", "refresh_token": ""}'
    )
    before = emulator.stats()["apiCalls"].get("lwaToken", 0)
    code, out = _run(["credentials", "set"], stdin=json.dumps(emulator.credentials), monkeypatch=monkeypatch)
    assert code == 0, out
    assert emulator.stats()["apiCalls"]["lwaToken"] == before + 1  # verified by one token exchange
    assert _stored(local_aws) == emulator.credentials
    assert "accepted the credentials" in out and f"stored in {secret_id}" in out
    _no_value_of(emulator.credentials, out)
    code, out = _run(["doctor"])
    assert _lines(out)["token exchange"].startswith("✔ token exchange"), out


def test_a_refused_exchange_or_check_only_writes_nothing(
    local_aws: LocalAws, emulator: Emulator, operator_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = _stored(local_aws)
    wrong = {**emulator.credentials, "client_secret": "amzn1.oa2-cs.v1.wrong"}
    code, out = _run(["credentials", "set", "--stdin"], stdin=json.dumps(wrong), monkeypatch=monkeypatch)
    assert code == 7
    assert out.startswith("abrecon: error: not stored: LWA answered invalid_client: the client id or client secret")
    assert _stored(local_aws) == stored
    _no_value_of(wrong, out)
    revoked = {**emulator.credentials, "refresh_token": "Atzr|revoked"}
    code, out = _run(["credentials", "set"], stdin=json.dumps(revoked), monkeypatch=monkeypatch)
    assert code == 7 and "invalid_grant" in out and _stored(local_aws) == stored
    fresh = {"client_id": emulator.credentials["client_id"], "client_secret": "x", "refresh_token": "y"}
    local_aws.client("secretsmanager").put_secret_value(
        SecretId=local_aws.stack.outputs["LwaSecretArn"] if local_aws.stack else "", SecretString=json.dumps(fresh)
    )
    code, out = _run(
        ["credentials", "set", "--check-only"], stdin=json.dumps(emulator.credentials), monkeypatch=monkeypatch
    )
    assert code == 0 and "--check-only: " in out and "left as it was" in out
    assert _stored(local_aws) == fresh  # verified, and still not written
    _no_value_of(emulator.credentials, out)
    code, out = _run(["credentials", "set"], stdin=json.dumps(emulator.credentials), monkeypatch=monkeypatch)
    assert code == 0 and _stored(local_aws) == emulator.credentials


def test_bad_input_is_a_usage_error_that_quotes_no_value(
    local_aws: LocalAws, emulator: Emulator, operator_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = _stored(local_aws)
    secret = emulator.credentials["client_secret"]
    cases = {
        f'{{"client_id": "a", "client_secret": "{secret}"': "standard input is not JSON",
        json.dumps({"client_id": "a", "client_secret": secret}): "no value given for refresh_token",
        json.dumps({**emulator.credentials, "clientSecret": secret}): "unknown key(s) 'clientSecret'",
        json.dumps([secret]): "not a JSON object",
    }
    for text, complaint in cases.items():
        code, out = _run(["credentials", "set"], stdin=text, monkeypatch=monkeypatch)
        assert code == 2 and complaint in out, out
        assert secret not in out
    assert _stored(local_aws) == stored


def test_on_a_terminal_it_prompts_without_echo(
    local_aws: LocalAws, emulator: Emulator, operator_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    asked: list[str] = []

    def getpass(prompt: str) -> str:
        asked.append(prompt)
        key = next(k for k in ("client_id", "client_secret", "refresh_token") if k.replace("_", " ") in prompt)
        return emulator.credentials[key]

    monkeypatch.setattr("sys.stdin", Terminal(""))
    monkeypatch.setattr("getpass.getpass", getpass)
    code, out = _run(["credentials", "set", "--check-only"])
    assert code == 0, out
    assert [p.split(" (")[0].rstrip(": ") for p in asked] == ["LWA client id", "LWA client secret", "LWA refresh token"]
    _no_value_of(emulator.credentials, out)


def test_credentials_are_never_taken_from_the_command_line(operator_env: None, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as refused:
        _run(["credentials", "set", "--refresh-token", "Atzr|x"])
    assert refused.value.code == 2


def test_doctor_reports_the_last_run_and_its_report_then_a_failed_one(
    local_aws: LocalAws, emulator: Emulator, operator_env: None
) -> None:
    assert local_aws.stack is not None
    done = wait_for_execution(local_aws, start_execution(local_aws, "doctor-good-run", window_of(emulator)))
    assert done["status"] == "SUCCEEDED", done
    code, out = _run(["doctor"])
    assert code == 0, out
    bucket = local_aws.stack.outputs["DocumentBucketName"]
    line = _lines(out)["last run"]
    assert line.startswith("✔ last run: doctor-good-run (started ")
    assert f"{len(emulator.invoice_numbers())} invoice(s)" in line
    assert line.endswith(f"report s3://{bucket}/runs/doctor-good-run/report.html")
    failed = wait_for_execution(local_aws, start_execution(local_aws, "doctor-bad-run", {"from": "not a date"}))
    assert failed["status"] == "FAILED"
    code, out = _run(["doctor"])
    assert code == 1
    line = _lines(out)["last run"]
    assert line.startswith("✘ last run: doctor-bad-run (started ") and "FAILED" in line
    assert "InvalidInputError: fetch_transactions: invalid input" in line and "Traceback" not in line
    assert line.endswith("fix the cause, then start its window again (abrecon start)")
