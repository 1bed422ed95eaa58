"""The sandbox's own fault injection and audits: S3 write faults, a Lambda process that dies, the disk-write
audit hook of the Lambda workers, and the log scan for secrets."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import botocore.parsers
import pytest
from helpers import worker_pool_for

from abrecon_sandbox.aws.faults import (
    AWS_FAULT_PROFILES,
    CRASH_ENV,
    CRASH_FUNCTION,
    LAMBDA_USER_AGENT,
    SECRETS_OUTAGE_REQUESTS,
    S3WriteFaults,
    ServiceFaults,
    all_fault_profiles,
    crash_environment,
    emulator_profile,
    pick,
)
from abrecon_sandbox.emulator import FAULT_PROFILES
from abrecon_sandbox.run.audit import secrets_in_logs

INVOICES = [f"INV-{n:02d}" for n in range(12)]


def test_every_profile_is_listed_once_and_aws_profiles_leave_the_emulator_alone() -> None:
    profiles = all_fault_profiles()
    assert list(profiles) == [*FAULT_PROFILES, *AWS_FAULT_PROFILES]
    assert {"s3-write-failure", "handler-crash", "chaos"} <= set(profiles)
    assert emulator_profile("s3-write-failure") == "none" and emulator_profile("chaos") == "chaos"


def test_picks_are_seeded_and_never_empty() -> None:
    assert pick(7, "crash", INVOICES, 0.34) == pick(7, "crash", reversed(INVOICES), 0.34)
    assert len(pick(7, "crash", INVOICES[:1], 0.0001)) == 1
    assert pick(7, "crash", [], 0.5) == []
    env = crash_environment("handler-crash", 7, INVOICES)
    assert set(env) == {CRASH_FUNCTION} and env[CRASH_FUNCTION][CRASH_ENV]
    assert crash_environment("chaos", 7, INVOICES) == {}


def test_s3_write_faults_hit_document_puts_as_planned() -> None:
    faults = S3WriteFaults(7, INVOICES)
    kinds = set(faults.plan.values())
    assert kinds == {"outage", "after-write", "slowdown"}
    path = "/bucket/documents/ATVPDKIKX0DER/{}/Invoice.pdf"
    by_kind = {kind: next(n for n, k in faults.plan.items() if k == kind) for kind in kinds}
    assert faults.decide(path.format(by_kind["slowdown"])) == "before"
    assert faults.decide(path.format(by_kind["slowdown"])) is None  # only the first write
    assert faults.decide(path.format(by_kind["after-write"])) == "after"
    assert faults.decide(path.format(by_kind["after-write"])) is None
    for _ in range(5):  # an outage lasts
        assert faults.decide(path.format(by_kind["outage"])) == "before"
    faults.end_outage()
    assert faults.decide(path.format(by_kind["outage"])) is None
    assert faults.decide("/bucket/runs/x/summary.json") is None  # only documents/
    clean = next(n for n in INVOICES if n not in faults.plan)
    assert faults.decide(path.format(clean)) is None
    assert faults.injected == {"s3-slowdown": 1, "s3-after-write": 1, "s3-outage": 5}


def test_a_worker_that_dies_answers_as_lambda_does(tmp_path: Path) -> None:
    pool, spec = worker_pool_for(
        tmp_path, "import os, signal\n\ndef lambda_handler(event, context):\n    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    try:
        ok, body = pool.invoke(spec, b"{}")
    finally:
        pool.stop()
    assert not ok
    assert json.loads(body)["errorType"] == "Runtime.ExitError"
    assert pool.stats.crashes == {"test-function": 1}


def test_the_workers_report_every_file_written(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    pool, spec = worker_pool_for(
        tmp_path,
        "import os, tempfile\n\ndef lambda_handler(event, context):\n"
        "    with tempfile.NamedTemporaryFile() as f:\n        f.write(b'report')\n"
        "    open(os.path.join(os.environ['HOME'], 'x'), 'w').close()\n    return {'ok': True}\n",
        {"TMPDIR": str(scratch), "HOME": str(scratch)},
    )
    try:
        ok, body = pool.invoke(spec, b"{}")
    finally:
        pool.stop()
    assert ok and json.loads(body) == {"ok": True}
    writes = pool.stats.disk_writes["test-function"]
    assert any(w.startswith("open ") and str(scratch) in w for w in writes), writes
    assert any(w.endswith("/x") for w in writes), writes


def test_a_worker_that_writes_nothing_reports_nothing(tmp_path: Path) -> None:
    pool, spec = worker_pool_for(
        tmp_path,
        "import io\n\ndef lambda_handler(event, context):\n    io.BytesIO(b'in memory').read()\n    return 1\n",
    )
    try:
        assert pool.invoke(spec, b"{}")[0]
    finally:
        pool.stop()
    assert pool.stats.disk_writes == {}


@pytest.mark.parametrize("secret", ["amzn1.oa2-cs.v1.abc123", "Atzr|refresh", "Atza|access-token"])
def test_the_log_scan_finds_a_secret_on_any_line(tmp_path: Path, secret: str) -> None:
    (tmp_path / "a.log").write_text("started\nnothing here\n")
    (tmp_path / "b.log").write_text(f'{{"message": "calling with {secret}"}}\nok\n')
    found = secrets_in_logs(tmp_path, [secret, ""])
    assert (found["lines"], found["files"], found["linesScanned"]) == (1, {"b.log": 1}, 4)
    assert secret not in json.dumps(found)  # counts and file names only


def _parsed(answer: Any, protocol: str) -> dict[str, Any]:
    """What botocore makes of an injected answer: its error code and whether its retry rules retry it."""
    (status, headers, body), _apply_first = answer
    parser = botocore.parsers.create_parser(protocol)
    response = {"status_code": int(status.split()[0]), "headers": dict(headers), "body": body}
    parsed: dict[str, Any] = parser.parse(response, None)
    return parsed


def _environ(target: str = "", method: str = "POST", path: str = "/", agent: str = LAMBDA_USER_AGENT) -> dict[str, Any]:
    return {"HTTP_X_AMZ_TARGET": target, "REQUEST_METHOD": method, "PATH_INFO": path, "HTTP_USER_AGENT": agent}


def test_service_faults_answer_in_each_services_error_shape() -> None:
    dynamo = ServiceFaults("dynamodb-throttling", 7)
    codes: Counter[str] = Counter()
    for _ in range(200):
        answer = dynamo.answer("dynamodb", _environ("DynamoDB_20120810.UpdateItem"))
        if answer is not None:
            assert answer[1] is False  # a throttled request is not applied
            codes[_parsed(answer, "json")["Error"]["Code"]] += 1
    assert set(codes) == {"ThrottlingException", "ProvisionedThroughputExceededException"}
    assert 20 <= sum(codes.values()) <= 60  # about 20%
    five = ServiceFaults("dynamodb-5xx", 7)
    answers = [a for _ in range(200) if (a := five.answer("dynamodb", _environ("DynamoDB_20120810.PutItem")))]
    assert {_parsed(a, "json")["Error"]["Code"] for a in answers} == {
        "InternalServerError",
        "ServiceUnavailableException",
    }
    assert {a[1] for a in answers} == {True, False}  # some after the write was applied
    secrets = ServiceFaults("secretsmanager-5xx", 7)
    first = [
        secrets.answer("secretsmanager", _environ("secretsmanager.GetSecretValue"))
        for _ in range(SECRETS_OUTAGE_REQUESTS)
    ]
    assert all(a is not None and _parsed(a, "json")["ResponseMetadata"]["HTTPStatusCode"] >= 500 for a in first)
    assert secrets.answer("secretsmanager", _environ("secretsmanager.PutSecretValue")) is None  # the sandbox's own
    kms = ServiceFaults("kms-throttling", 7)
    s3 = [kms.answer("s3", _environ(method="PUT", path="/bucket/documents/a.pdf")) for _ in range(100)]
    refused = [a for a in s3 if a is not None]
    assert refused and all(_parsed(a, "rest-xml")["Error"]["Code"] == "SlowDown" for a in refused)
    assert all(b"AWS KMS" in a[0][2] for a in refused)
    assert all(kms.answer("s3", _environ(method="PUT", path="/b/k", agent="Boto3/1 (moto)")) is None for _ in range(50))
    direct = [a for _ in range(100) if (a := kms.answer("kms", _environ("TrentService.Decrypt")))]
    assert direct and {_parsed(a, "json")["Error"]["Code"] for a in direct} == {"ThrottlingException"}
