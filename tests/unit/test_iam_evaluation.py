"""The sandbox's IAM evaluation (abrecon_sandbox.aws.iam) against AWS's documented rules, on small policies: condition
operators and missing keys, explicit deny, an Allow whose condition fails, the key policy's delegation to IAM."""

from __future__ import annotations

from typing import Any

import pytest

from abrecon_sandbox.aws.iam import (
    ACCOUNT_ROOT,
    Call,
    NamedPolicy,
    PolicyError,
    Principal,
    check_condition_operators,
    conditions_hold,
    decide,
)

ROLE = "arn:aws:iam::123456789012:role/abrecon-FnRole"
BUCKET = "arn:aws:s3:::docs"


def principal(*statements: dict[str, Any]) -> Principal:
    return Principal(
        caller="Fn",
        role_arn=ROLE,
        session_arn="arn:aws:sts::123456789012:assumed-role/abrecon-FnRole/fn",
        policies=(NamedPolicy("FnRole/Policy0", {"Statement": list(statements)}),),
    )


def allow(action: str, resource: str, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


@pytest.mark.parametrize(
    ("conditions", "context", "holds"),
    [
        ({"Bool": {"aws:SecureTransport": "false"}}, {"aws:securetransport": "false"}, True),
        ({"Bool": {"aws:SecureTransport": "false"}}, {"aws:securetransport": "true"}, False),
        ({"Bool": {"aws:SecureTransport": "false"}}, {}, False),  # a missing key fails a positive operator
        ({"StringNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "k1"}}, {}, True),  # negated: true
        (
            {"StringNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "k1"}},
            {"s3:x-amz-server-side-encryption-aws-kms-key-id": "k1"},
            False,
        ),
        ({"Null": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "true"}}, {}, True),
        (
            {"Null": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "true"}},
            {"s3:x-amz-server-side-encryption-aws-kms-key-id": "k"},
            False,
        ),
        ({"StringEqualsIfExists": {"aws:SourceAccount": "1"}}, {}, True),
        (
            {"ArnLike": {"aws:SourceArn": "arn:aws:cloudwatch:*:1:alarm:abrecon-*"}},
            {"aws:sourcearn": "arn:aws:cloudwatch:us-east-1:1:alarm:abrecon-x"},
            True,
        ),
        (
            {"ArnLike": {"aws:SourceArn": "arn:aws:cloudwatch:*:1:alarm:abrecon-*"}},
            {"aws:sourcearn": "arn:aws:cloudwatch:us-east-1:1:alarm:other"},
            False,
        ),
        ({"StringEquals": {"aws:SourceAccount": ["1", "2"]}}, {"aws:sourceaccount": "2"}, True),  # any value
        ({"StringEquals": {"a": "1", "b": "2"}}, {"a": "1"}, False),  # every key
    ],
)
def test_conditions_follow_aws_rules(conditions: dict[str, Any], context: dict[str, str], holds: bool) -> None:
    assert conditions_hold(conditions, context) is holds


def test_an_allow_whose_condition_fails_does_not_apply() -> None:
    """moto's evaluator answers DENIED here; AWS finds the statement not applicable, so another Allow still counts."""
    who = principal(
        allow("s3:GetObject", f"{BUCKET}/*", Condition={"Bool": {"aws:SecureTransport": "false"}}),
        allow("s3:GetObject", f"{BUCKET}/runs/*"),
    )
    decision = decide(
        who, Call("s3:GetObject", f"{BUCKET}/runs/a", {"aws:securetransport": "true"}), None, key_policy=False
    )
    assert decision.allowed


def test_explicit_deny_in_the_resource_policy_wins_over_an_identity_allow() -> None:
    who = principal(allow("s3:*", f"{BUCKET}/*"))
    bucket_policy = NamedPolicy(
        "bucket policy",
        {
            "Statement": [
                {
                    "Sid": "NoHttp",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": f"{BUCKET}/*",
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ]
        },
    )
    call = Call("s3:GetObject", f"{BUCKET}/a", {"aws:securetransport": "false"})
    decision = decide(who, call, bucket_policy, key_policy=False)
    assert not decision.allowed
    assert decision.policy == "bucket policy (NoHttp)"
    assert decision.reason == "with an explicit deny in a resource-based policy"


def test_actions_match_without_regard_to_case_resources_with_it() -> None:
    who = principal(allow("S3:getobject", f"{BUCKET}/runs/*"))
    assert decide(who, Call("s3:GetObject", f"{BUCKET}/runs/a"), None, key_policy=False).allowed
    assert not decide(who, Call("s3:GetObject", f"{BUCKET}/RUNS/a"), None, key_policy=False).allowed


def test_a_key_policy_delegating_to_the_account_needs_the_identity_policy_too() -> None:
    key = "arn:aws:kms:us-east-1:123456789012:key/k"
    delegating = NamedPolicy(
        "key policy",
        {"Statement": [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT_ROOT}, "Action": "kms:*", "Resource": "*"}]},
    )
    services_only = NamedPolicy(
        "key policy",
        {
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "kms:*", "Resource": "*"}
            ]
        },
    )
    granted = principal(allow("kms:Decrypt", key))
    assert decide(granted, Call("kms:Decrypt", key), delegating, key_policy=True).allowed
    assert not decide(principal(), Call("kms:Decrypt", key), delegating, key_policy=True).allowed
    refused = decide(granted, Call("kms:Decrypt", key), services_only, key_policy=True)
    assert not refused.allowed
    assert refused.reason == "because no resource-based policy allows the kms:Decrypt action"


def test_a_resource_policy_naming_the_role_allows_without_an_identity_policy() -> None:
    policy = NamedPolicy(
        "topic policy",
        {"Statement": [{"Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": "sns:Publish", "Resource": "t"}]},
    )
    assert decide(principal(), Call("sns:Publish", "t"), policy, key_policy=False).allowed
    assert not decide(principal(), Call("sns:Publish", "t"), None, key_policy=False).allowed


def test_an_operator_the_sandbox_does_not_evaluate_is_refused_not_ignored() -> None:
    policy = NamedPolicy(
        "p", {"Statement": [allow("s3:GetObject", "*", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})]}
    )
    with pytest.raises(PolicyError, match="IpAddress"):
        check_condition_operators(policy)
    with pytest.raises(PolicyError, match="NotResource"):
        check_condition_operators(
            NamedPolicy("p", {"Statement": [{"Effect": "Allow", "Action": "s3:*", "NotResource": "x"}]})
        )
