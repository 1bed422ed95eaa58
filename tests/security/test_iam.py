"""template.yaml and the state machine: least-privilege IAM, encryption with the stack's key, no secret in
environment variables or state data. Every check runs on the real files, and on a copy broken in the way the
check guards against, to prove it would catch that.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import template_checks as checks
from helpers import ROOT, TEMPLATE

from abrecon_sandbox.aws.stack import load_template

Template = dict[str, Any]
Check = Callable[[Template], list[str]]

TEMPLATE_CHECKS: dict[str, Check] = {
    "wildcard actions": checks.wildcard_action_problems,
    "wildcard resources": checks.wildcard_resource_problems,
    "public principals": checks.public_principal_problems,
    "stale allow-list entries": checks.stale_allowlist_entries,
    "key rotation": checks.key_rotation_problems,
    "stack key everywhere": checks.stack_key_problems,
    "bucket policy": checks.bucket_policy_problems,
    "secrets in environment variables": checks.environment_secret_problems,
}


@pytest.fixture(scope="module")
def template() -> Template:
    loaded: Template = load_template(TEMPLATE)
    return loaded


@pytest.fixture(scope="module")
def asl(template: Template) -> dict[str, Any]:
    documents = checks.load_asl(ROOT, template)
    assert documents, "no state machine definition found"
    return documents


# --- the real files ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TEMPLATE_CHECKS)
def test_template_holds(template: Template, name: str) -> None:
    assert TEMPLATE_CHECKS[name](template) == []


def test_state_machine_passes_no_secret_material(template: Template, asl: dict[str, Any]) -> None:
    assert checks.state_machine_secret_problems(asl, template) == []


def test_every_allow_list_entry_says_why() -> None:
    for table in (checks.ALLOWED_WILDCARD_RESOURCE, checks.ALLOWED_WILDCARD_ACTION):
        for entry, reason in table.items():
            assert len(reason) > 20, entry


def test_the_checks_see_every_policy(template: Template) -> None:
    """The statement walker finds the policies of every kind the template has (so a check passing means something)."""
    holders = {s.resource_type for s in checks.policy_statements(template)}
    assert {"AWS::Serverless::Function", "AWS::Serverless::StateMachine", "AWS::KMS::Key", "AWS::S3::BucketPolicy"} <= (
        holders
    )
    functions = checks.resources_of(template, "AWS::Serverless::Function")
    assert {s.resource for s in checks.policy_statements(template)} >= set(functions)


# --- each check fails on a template broken in its way ---------------------------------------------------------------


def one(template: Template, kind: str) -> tuple[str, dict[str, Any]]:
    """The first resource of a type (name, resource)."""
    return next(iter(checks.resources_of(template, kind).items()))


def function_statements(template: Template) -> list[dict[str, Any]]:
    _, function = one(template, "AWS::Serverless::Function")
    statements: list[dict[str, Any]] = function["Properties"]["Policies"][0]["Statement"]
    return statements


def machine_statements(template: Template) -> list[dict[str, Any]]:
    _, machine = one(template, "AWS::Serverless::StateMachine")
    statements: list[dict[str, Any]] = machine["Properties"]["Policies"][0]["Statement"]
    return statements


def key_statements(template: Template) -> list[dict[str, Any]]:
    _, key = one(template, "AWS::KMS::Key")
    statements: list[dict[str, Any]] = key["Properties"]["KeyPolicy"]["Statement"]
    return statements


def bucket_statements(template: Template) -> list[dict[str, Any]]:
    _, policy = one(template, "AWS::S3::BucketPolicy")
    statements: list[dict[str, Any]] = policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def env(template: Template) -> dict[str, Any]:
    variables: dict[str, Any] = template["Globals"]["Function"]["Environment"]["Variables"]
    return variables


def _add_role(template: Template, statement: dict[str, Any], **extra: Any) -> None:
    template["Resources"]["ExtraRole"] = {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": {
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ]
            },
            "Policies": [{"PolicyName": "extra", "PolicyDocument": {"Statement": [statement]}}],
            **extra,
        },
    }


def _set_key(template: Template, kind: str, path: list[str], value: Any) -> None:
    _, resource = one(template, kind)
    node = resource["Properties"]
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def _sse_default(template: Template) -> dict[str, Any]:
    _, bucket = one(template, "AWS::S3::Bucket")
    default: dict[str, Any] = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
        "ServerSideEncryptionByDefault"
    ]
    return default


def _tls_statement(template: Template) -> dict[str, Any]:
    return next(s for s in bucket_statements(template) if "Bool" in s.get("Condition", {}))


def _key_header_statement(template: Template) -> dict[str, Any]:
    return next(s for s in bucket_statements(template) if "StringNotEquals" in s.get("Condition", {}))


def _drop_sid(statements: list[dict[str, Any]], sid: str) -> None:
    statements[:] = [s for s in statements if s.get("Sid") != sid]


ALLOW = {"Effect": "Allow"}
GET_ATT_KEY = {"Fn::GetAtt": ["DocumentKey", "Arn"]}

# (check, what is broken, how) -- the how mutates a deep copy of the loaded template.
TEMPLATE_BREAKS: list[tuple[str, str, Callable[[Template], None]]] = [
    ("wildcard actions", "service:* in a function policy", lambda t: function_statements(t)[0].update(Action="s3:*")),
    ("wildcard actions", "'*' in a function policy", lambda t: function_statements(t)[0].update(Action=["*"])),
    (
        "wildcard actions",
        "Allow with NotAction",
        lambda t: function_statements(t).append({**ALLOW, "NotAction": "iam:*", "Resource": GET_ATT_KEY}),
    ),
    (
        "wildcard actions",
        "sns:* in the state machine policy",
        lambda t: machine_statements(t).append({**ALLOW, "Action": "sns:*", "Resource": {"Ref": "FinanceTopic"}}),
    ),
    (
        "wildcard actions",
        "kms:* for a service in the key policy",
        lambda t: key_statements(t).append(
            {"Sid": "Logs", **ALLOW, "Principal": {"Service": "logs.amazonaws.com"}, "Action": "kms:*", "Resource": "*"}
        ),
    ),
    (
        "wildcard actions",
        "an AWS::IAM::Role with Action '*'",
        lambda t: _add_role(t, {**ALLOW, "Action": "*", "Resource": GET_ATT_KEY}),
    ),
    (
        "wildcard resources",
        "Resource '*' in a function policy",
        lambda t: function_statements(t)[0].update(Resource="*"),
    ),
    (
        "wildcard resources",
        "every table in the account",
        lambda t: function_statements(t)[0].update(
            Resource={"Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/*"}
        ),
    ),
    ("wildcard resources", "every bucket", lambda t: function_statements(t)[0].update(Resource="arn:aws:s3:::*")),
    (
        "wildcard resources",
        "an allow-listed Sid on another resource",
        lambda t: function_statements(t).append(
            {"Sid": "VendedLogDelivery", **ALLOW, "Action": "logs:GetLogDelivery", "Resource": "*"}
        ),
    ),
    (
        "wildcard resources",
        "a new key policy statement on '*'",
        lambda t: key_statements(t).append(
            {
                "Sid": "Anyone",
                **ALLOW,
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "kms:Decrypt",
                "Resource": "*",
            }
        ),
    ),
    (
        "wildcard resources",
        "Allow with NotResource",
        lambda t: function_statements(t).append({**ALLOW, "Action": "s3:GetObject", "NotResource": GET_ATT_KEY}),
    ),
    (
        "wildcard resources",
        "an AWS::IAM::Role on '*'",
        lambda t: _add_role(t, {**ALLOW, "Action": "s3:GetObject", "Resource": "*"}),
    ),
    (
        "wildcard resources",
        "an AWS managed policy on an IAM role",
        lambda t: _add_role(
            t,
            {**ALLOW, "Action": "s3:GetObject", "Resource": GET_ATT_KEY},
            ManagedPolicyArns=["arn:aws:iam::aws:policy/AdministratorAccess"],
        ),
    ),
    (
        "wildcard resources",
        "a managed policy in a function's Policies",
        lambda t: one(t, "AWS::Serverless::Function")[1]["Properties"]["Policies"].append("AmazonS3FullAccess"),
    ),
    (
        "wildcard resources",
        "a SAM policy template in a function's Policies",
        lambda t: one(t, "AWS::Serverless::Function")[1]["Properties"]["Policies"].append(
            {"S3CrudPolicy": {"BucketName": {"Ref": "DocumentBucket"}}}
        ),
    ),
    (
        "public principals",
        "Allow to everyone in the bucket policy",
        lambda t: bucket_statements(t).append(
            {**ALLOW, "Principal": "*", "Action": "s3:GetObject", "Resource": {"Fn::Sub": "${DocumentBucket.Arn}/*"}}
        ),
    ),
    (
        "public principals",
        "Allow to AWS '*' in the key policy",
        lambda t: key_statements(t).append(
            {"Sid": "AccountAdministers", **ALLOW, "Principal": {"AWS": "*"}, "Action": "kms:Decrypt", "Resource": "*"}
        ),
    ),
    (
        "stale allow-list entries",
        "the vended-logs statement removed",
        lambda t: _drop_sid(machine_statements(t), "VendedLogDelivery"),
    ),
    (
        "stale allow-list entries",
        "tracing switched off",
        lambda t: t["Globals"]["Function"].update(Tracing="PassThrough"),
    ),
    ("key rotation", "rotation off", lambda t: _set_key(t, "AWS::KMS::Key", ["EnableKeyRotation"], False)),
    ("key rotation", "rotation not set", lambda t: one(t, "AWS::KMS::Key")[1]["Properties"].pop("EnableKeyRotation")),
    (
        "stack key everywhere",
        "secret under the AWS managed key",
        lambda t: _set_key(t, "AWS::SecretsManager::Secret", ["KmsKeyId"], "alias/aws/secretsmanager"),
    ),
    (
        "stack key everywhere",
        "topic without a key",
        lambda t: one(t, "AWS::SNS::Topic")[1]["Properties"].pop("KmsMasterKeyId"),
    ),
    (
        "stack key everywhere",
        "table under the AWS owned key",
        lambda t: _set_key(t, "AWS::DynamoDB::Table", ["SSESpecification"], {"SSEEnabled": False}),
    ),
    (
        "stack key everywhere",
        "log group without a key",
        lambda t: one(t, "AWS::Logs::LogGroup")[1]["Properties"].pop("KmsKeyId"),
    ),
    (
        "stack key everywhere",
        "bucket default encryption SSE-S3",
        lambda t: _sse_default(t).update(SSEAlgorithm="AES256"),
    ),
    (
        "stack key everywhere",
        "environment variables under the AWS managed key",
        lambda t: t["Globals"]["Function"].pop("KmsKeyArn"),
    ),
    ("bucket policy", "no TLS-only statement", lambda t: bucket_statements(t).remove(_tls_statement(t))),
    (
        "bucket policy",
        "TLS statement inverted",
        lambda t: _tls_statement(t).update(Condition={"Bool": {"aws:SecureTransport": "true"}}),
    ),
    (
        "bucket policy",
        "TLS statement on objects only",
        lambda t: _tls_statement(t).update(Resource={"Fn::Sub": "${DocumentBucket.Arn}/*"}),
    ),
    ("bucket policy", "TLS statement for GetObject only", lambda t: _tls_statement(t).update(Action="s3:GetObject")),
    ("bucket policy", "no stack-key upload statement", lambda t: bucket_statements(t).remove(_key_header_statement(t))),
    (
        "bucket policy",
        "upload statement names another key",
        lambda t: _key_header_statement(t)["Condition"]["StringNotEquals"].update(
            {"s3:x-amz-server-side-encryption-aws-kms-key-id": "alias/aws/s3"}
        ),
    ),
    (
        "bucket policy",
        "upload statement turned into an Allow",
        lambda t: _key_header_statement(t).update(Effect="Allow"),
    ),
    (
        "secrets in environment variables",
        "client secret in a variable",
        lambda t: env(t).update(AB_LWA_CLIENT_SECRET="amzn1.oa2-cs.v1.0123456789abcdef"),
    ),
    (
        "secrets in environment variables",
        "refresh token from a parameter",
        lambda t: (
            t["Parameters"].update(RefreshToken={"Type": "String"}),
            env(t).update(LWA_REFRESH_TOKEN={"Ref": "RefreshToken"}),
        ),
    ),
    (
        "secrets in environment variables",
        "secret resolved at deploy time",
        lambda t: env(t).update(LWA_CREDENTIALS="{{resolve:secretsmanager:abrecon/lwa:SecretString:client_secret}}"),
    ),
    (
        "secrets in environment variables",
        "a NoEcho parameter under an innocent name",
        lambda t: (
            t["Parameters"].update(Hidden={"Type": "String", "NoEcho": True}),
            env(t).update(AB_OPTIONS={"Ref": "Hidden"}),
        ),
    ),
    (
        "secrets in environment variables",
        "an access token under an innocent name",
        lambda t: one(t, "AWS::Serverless::Function")[1]["Properties"].update(
            Environment={"Variables": {"AB_HEADER": "Atza|IwEBIAbcdef"}}
        ),
    ),
    (
        "secrets in environment variables",
        "the secret's name, not a reference",
        lambda t: env(t).update(AB_LWA_SECRET_ID="abrecon/lwa-credentials-value"),
    ),
]


@pytest.mark.parametrize(("check", "broken", "mutate"), TEMPLATE_BREAKS, ids=[b[1] for b in TEMPLATE_BREAKS])
def test_check_fails_on_a_broken_template(
    template: Template, check: str, broken: str, mutate: Callable[[Template], None]
) -> None:
    copy_ = copy.deepcopy(template)
    mutate(copy_)
    problems = TEMPLATE_CHECKS[check](copy_)
    assert problems, f"{check!r} did not notice: {broken}"
    assert TEMPLATE_CHECKS[check](template) == [], "the mutation leaked into the shared template"


def test_every_template_check_has_a_break() -> None:
    assert {b[0] for b in TEMPLATE_BREAKS} == set(TEMPLATE_CHECKS)


def test_secret_id_by_reference_or_arn_is_fine(template: Template) -> None:
    copy_ = copy.deepcopy(template)
    (secret, _) = one(copy_, "AWS::SecretsManager::Secret")
    env(copy_).update(
        OTHER_SECRET_ARN={"Fn::GetAtt": [secret, "Id"]},
        THIRD_SECRET_ID="arn:aws:secretsmanager:us-east-1:123456789012:secret:abrecon/lwa-AbCdEf",
    )
    assert checks.environment_secret_problems(copy_) == []


def _first_lambda_task(document: Any) -> dict[str, Any]:
    if isinstance(document, dict):
        if document.get("Resource") == "arn:aws:states:::lambda:invoke" and "Parameters" in document:
            return document
        for value in document.values():
            found = _first_lambda_task(value)
            if found:
                return found
    return {}


def _states(document: dict[str, Any]) -> dict[str, Any]:
    states: dict[str, Any] = document["States"]
    return states


ASL_BREAKS: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
    (
        "a payload field named client_secret",
        lambda d: _first_lambda_task(d)["Parameters"].update({"client_secret.$": "$.credentials.client_secret"}),
    ),
    (
        "a payload path reading refresh_token",
        lambda d: _first_lambda_task(d)["Parameters"].update({"Payload.$": "$.lwa.refresh_token"}),
    ),
    (
        "the presigned URL selected into the state",
        lambda d: _first_lambda_task(d).update(ResultSelector={"url.$": "$.Payload.url"}),
    ),
    (
        "an aws-sdk task reading the secret",
        lambda d: _states(d).update(
            {
                "Read secret": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::aws-sdk:secretsmanager:getSecretValue",
                    "Parameters": {"SecretId": "abrecon/lwa"},
                    "End": True,
                }
            }
        ),
    ),
    (
        "a literal token in a Pass state",
        lambda d: _states(d).update({"Leak": {"Type": "Pass", "Result": {"header": "Atza|IwEBIAbcdef"}, "End": True}}),
    ),
    (
        "an access token in Assign",
        lambda d: _states(d).update(
            {"Keep": {"Type": "Pass", "Assign": {"accessToken.$": "$.Payload.token"}, "End": True}}
        ),
    ),
]


@pytest.mark.parametrize(("broken", "mutate"), ASL_BREAKS, ids=[b[0] for b in ASL_BREAKS])
def test_state_machine_check_fails_on_a_broken_definition(
    template: Template, asl: dict[str, Any], broken: str, mutate: Callable[[dict[str, Any]], None]
) -> None:
    documents = copy.deepcopy(asl)
    mutate(next(iter(documents.values())))
    assert checks.state_machine_secret_problems(documents, template), f"not noticed: {broken}"


def test_state_machine_check_fails_on_a_secret_substitution(template: Template, asl: dict[str, Any]) -> None:
    copy_ = copy.deepcopy(template)
    _, machine = one(copy_, "AWS::Serverless::StateMachine")
    machine["Properties"]["DefinitionSubstitutions"]["LwaClientSecret"] = (
        "{{resolve:secretsmanager:abrecon/lwa:SecretString:client_secret}}"
    )
    assert checks.state_machine_secret_problems(asl, copy_)


def test_comments_are_free_text(template: Template, asl: dict[str, Any]) -> None:
    documents = copy.deepcopy(asl)
    _first_lambda_task(next(iter(documents.values())))["Comment"] = "fetches the presigned URL at once; no secret"
    assert checks.state_machine_secret_problems(documents, template) == []
