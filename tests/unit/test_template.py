"""template.yaml: what must hold for every deploy (the bucket, the key, the secret, the topic, the functions)."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import EVENTS, ROOT, TEMPLATE

from abrecon_sandbox.aws.stack import load_template


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    found: dict[str, Any] = load_template(TEMPLATE)["Resources"]
    return found


def _of_type(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    return {name: r for name, r in resources.items() if r["Type"] == kind}


def test_key_rotates(resources: dict[str, Any]) -> None:
    (key,) = _of_type(resources, "AWS::KMS::Key").values()
    assert key["Properties"]["EnableKeyRotation"] is True


def test_bucket_is_private_versioned_and_kms_encrypted_with_the_stack_key(resources: dict[str, Any]) -> None:
    (bucket,) = _of_type(resources, "AWS::S3::Bucket").values()
    props = bucket["Properties"]
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": ["DocumentKey", "Arn"]},
    }
    assert all(props["PublicAccessBlockConfiguration"].values())
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}


def test_bucket_policy_denies_plain_http_and_uploads_without_the_stack_key(resources: dict[str, Any]) -> None:
    (policy,) = _of_type(resources, "AWS::S3::BucketPolicy").values()
    denies = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} and s["Action"] == "s3:*" for s in denies)
    key_condition = "s3:x-amz-server-side-encryption-aws-kms-key-id"
    assert any(
        s["Action"] == "s3:PutObject"
        and s["Condition"].get("StringNotEquals", {}).get(key_condition) == {"Fn::GetAtt": ["DocumentKey", "Arn"]}
        for s in denies
    )
    assert any(
        s["Action"] == "s3:PutObject" and s["Condition"].get("Null", {}).get(key_condition) == "true" for s in denies
    )


def test_secret_topic_and_ledger_are_encrypted_with_the_stack_key(resources: dict[str, Any]) -> None:
    (secret,) = _of_type(resources, "AWS::SecretsManager::Secret").values()
    topics = _of_type(resources, "AWS::SNS::Topic").values()
    (table,) = _of_type(resources, "AWS::DynamoDB::Table").values()
    assert secret["Properties"]["KmsKeyId"] == {"Ref": "DocumentKey"}
    assert len(topics) == 2  # finance, operations
    assert all(topic["Properties"]["KmsMasterKeyId"] == {"Ref": "DocumentKey"} for topic in topics)
    assert table["Properties"]["SSESpecification"]["KMSMasterKeyId"] == {"Ref": "DocumentKey"}


def test_every_function_has_its_handler_and_a_sample_event(resources: dict[str, Any]) -> None:
    functions = _of_type(resources, "AWS::Serverless::Function")
    assert len(functions) == 8
    for name, function in functions.items():
        code = ROOT / function["Properties"]["CodeUri"]
        assert (code / "app.py").is_file(), name
        assert (EVENTS / f"{code.name}.json").is_file(), f"events/{code.name}.json missing for {name}"


def test_state_machine_logs_no_execution_data(resources: dict[str, Any]) -> None:
    (machine,) = _of_type(resources, "AWS::Serverless::StateMachine").values()
    assert machine["Properties"]["Logging"]["IncludeExecutionData"] is False


def test_schedule_takes_the_time_zone_parameter(resources: dict[str, Any]) -> None:
    # The schedule starts runs through start-run, which names each execution after its scheduled time.
    (event,) = resources["StartRunFunction"]["Properties"]["Events"].values()
    assert event["Type"] == "ScheduleV2"
    assert event["Properties"]["ScheduleExpressionTimezone"] == {"Ref": "ScheduleTimeZone"}
