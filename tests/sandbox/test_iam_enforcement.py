"""IAM enforced in the sandbox bites: copies of template.yaml broken one way each, and one focused request through
the router as the role makes it, answered exactly as AWS answers a refused request (status, error code, message).

test_the_template_allows_every_focused_call runs the same calls against the real template: each denial below is
the mutation's doing. The HeadObject-first write of the main branch before issue 10 is one of them: kept here as a
copy (not in product code), it fails on the real template with S3's 403, where the fixed DocumentStore succeeds.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from helpers import ROOT, TEMPLATE

from abrecon.storage import DocumentStore
from abrecon_sandbox.aws.local_aws import LocalAws
from abrecon_sandbox.aws.stack import load_template

Template = dict[str, Any]
DOWNLOAD = "DownloadDocumentFunction"
SUMMARIZE = "SummarizeRunFunction"
MACHINE = "ReconcileStateMachine"


def _session(aws: LocalAws, caller: str) -> str:
    assert aws.iam is not None
    principal = aws.iam.principals[aws.iam.key_for(caller)]
    return principal.session_arn


@contextmanager
def sandbox(tmp_path: Path, mutate: Callable[[Template], None] | None = None) -> Iterator[LocalAws]:
    """Local AWS from template.yaml, or from a copy that mutate broke (beside links to the code it points at)."""
    template_path = TEMPLATE
    if mutate is not None:
        template = copy.deepcopy(json.loads(json.dumps(load_template(TEMPLATE))))
        mutate(template)
        for directory in ("functions", "layers", "statemachine"):
            (tmp_path / directory).symlink_to(ROOT / directory)
        template_path = tmp_path / "template.json"
        template_path.write_text(json.dumps(template))
    aws = LocalAws(template_path, {}, tmp_path / "logs")
    aws.start()
    try:
        yield aws
    finally:
        aws.stop()


def statements(template: Template, logical_id: str) -> list[dict[str, Any]]:
    """The first inline policy statements of a function or state machine."""
    found: list[dict[str, Any]] = template["Resources"][logical_id]["Properties"]["Policies"][0]["Statement"]
    return found


def drop_action(template: Template, logical_id: str, action: str) -> None:
    """Remove one action from every statement of the resource's inline policy."""
    for statement in statements(template, logical_id):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        statement["Action"] = [a for a in actions if a != action]
    template["Resources"][logical_id]["Properties"]["Policies"][0]["Statement"] = [
        s for s in statements(template, logical_id) if s["Action"]
    ]


def refused(call: Callable[[], Any]) -> dict[str, Any]:
    """The error AWS's answer carried (status, code, message); fails if the call was allowed."""
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return {
        "status": response["ResponseMetadata"]["HTTPStatusCode"],
        "code": response["Error"].get("Code"),
        "message": response["Error"].get("Message"),
    }


def not_authorized(aws: LocalAws, caller: str, action: str, resource: str, why: str) -> str:
    """AWS's message for a refused request."""
    return f"User: {_session(aws, caller)} is not authorized to perform: {action} on resource: {resource} {why}"


NO_IDENTITY = "because no identity-based policy allows the {} action"


def put_document(aws: LocalAws, key: str = "documents/ATVPDKIKX0DER/INV-1/invoice.pdf") -> Any:
    """What download-document does with a PDF, as its role, through the product's own DocumentStore."""
    assert aws.stack
    store = DocumentStore(
        aws.client_as(DOWNLOAD, "s3"), aws.stack.output("DocumentBucket"), aws.stack.output("DocumentKey", "Arn")
    )
    return store.put_bytes_once(key, b"%PDF-1.7 sample", "application/pdf")


def head_first_put(aws: LocalAws, key: str) -> None:
    """The write of main before issue 10 (DocumentStore._stored_sha256): HeadObject on a key not there yet, 404
    taken as 'not there', then the put. Kept as a copy in this test only."""
    assert aws.stack
    s3 = aws.client_as(DOWNLOAD, "s3")
    bucket, key_arn = aws.stack.output("DocumentBucket"), aws.stack.output("DocumentKey", "Arn")
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise
    s3.put_object(Bucket=bucket, Key=key, Body=b"%PDF-", ServerSideEncryption="aws:kms", SSEKMSKeyId=key_arn)


# --- the real template ------------------------------------------------------------------------------------------


def test_the_template_allows_every_focused_call(tmp_path: Path) -> None:
    with sandbox(tmp_path) as aws:
        assert aws.stack and aws.iam
        stored = put_document(aws)
        assert stored.key.startswith("documents/")
        bucket = aws.stack.output("DocumentBucket")
        aws.client("s3").put_object(Bucket=bucket, Key="invoice-details/run/INV-1.json", Body=b"{}")
        aws.client_as(SUMMARIZE, "s3").get_object(Bucket=bucket, Key="invoice-details/run/INV-1.json")
        aws.client_as(DOWNLOAD, "secretsmanager").get_secret_value(SecretId=aws.stack.output("LwaSecret"))
        aws.client_as(MACHINE, "sns").publish(TopicArn=aws.stack.output("FinanceTopic"), Message="run done")
        aws.client_as(MACHINE, "lambda").invoke(FunctionName=aws.stack.output(SUMMARIZE, "Arn"), Payload=b"{}")
        assert aws.iam.summary() == {"accessDenied": 0, "accessDeniedCalls": []}


def test_the_old_head_object_first_write_is_refused_403_without_list_bucket(tmp_path: Path) -> None:
    """Finding 1 of issue 10: HeadObject of a missing key without s3:ListBucket answers 403, not 404."""
    with sandbox(tmp_path) as aws:
        assert aws.stack and aws.iam
        key = "documents/ATVPDKIKX0DER/INV-2/invoice.pdf"
        error = refused(lambda: head_first_put(aws, key))
        assert error == {"status": 403, "code": "403", "message": "Forbidden"}  # HEAD: S3 sends no body
        # GetObject of the same missing key: the XML body, "Access Denied", as S3 answers without s3:ListBucket.
        s3 = aws.client_as(DOWNLOAD, "s3")
        error = refused(lambda: s3.get_object(Bucket=aws.stack.output("DocumentBucket"), Key=key))
        assert error == {"status": 403, "code": "AccessDenied", "message": "Access Denied"}
        assert [(d["action"], d["caller"]) for d in aws.iam.summary()["accessDeniedCalls"]] == [
            ("s3:ListBucket", DOWNLOAD),
            ("s3:ListBucket", DOWNLOAD),
        ]
        assert put_document(aws, key).key == key  # the product's write of today needs no s3:ListBucket


def test_the_bucket_policy_refuses_plain_http(tmp_path: Path) -> None:
    with sandbox(tmp_path) as aws:
        assert aws.stack
        bucket = aws.stack.output("DocumentBucket")
        error = refused(lambda: aws.client_as(SUMMARIZE, "s3", tls=False).get_object(Bucket=bucket, Key="runs/x"))
        why = "with an explicit deny in a resource-based policy"
        resource = f"arn:aws:s3:::{bucket}/runs/x"
        assert error == {
            "status": 403,
            "code": "AccessDenied",
            "message": not_authorized(aws, SUMMARIZE, "s3:GetObject", resource, why),
        }


def test_an_upload_without_the_stack_key_is_refused_by_the_bucket_policy(tmp_path: Path) -> None:
    with sandbox(tmp_path) as aws:
        assert aws.stack and aws.iam
        bucket = aws.stack.output("DocumentBucket")
        s3 = aws.client_as(DOWNLOAD, "s3")
        error = refused(lambda: s3.put_object(Bucket=bucket, Key="documents/a/b/c.pdf", Body=b"x"))
        assert error["status"] == 403 and error["code"] == "AccessDenied"
        assert aws.iam.summary()["accessDeniedCalls"][0]["policy"] == (
            "DocumentBucketPolicy (bucket policy) (DenyUploadsWithoutTheStackKey)"
        )


# --- mutations --------------------------------------------------------------------------------------------------


def test_without_put_object_the_document_write_is_refused(tmp_path: Path) -> None:
    with sandbox(tmp_path, lambda t: drop_action(t, DOWNLOAD, "s3:PutObject")) as aws:
        assert aws.stack
        with pytest.raises(Exception, match="AccessDenied") as caught:
            put_document(aws)
        resource = f"arn:aws:s3:::{aws.stack.output('DocumentBucket')}/documents/ATVPDKIKX0DER/INV-1/invoice.pdf"
        assert not_authorized(aws, DOWNLOAD, "s3:PutObject", resource, NO_IDENTITY.format("s3:PutObject")) in str(
            caught.value
        )


def test_a_narrowed_resource_arn_refuses_the_read(tmp_path: Path) -> None:
    def narrow(template: Template) -> None:
        for statement in statements(template, SUMMARIZE):
            if statement.get("Sid") == "InvoiceDetailsForTheReport":
                statement["Resource"] = {"Fn::Sub": "${DocumentBucket.Arn}/invoice-details/other-run/*"}

    with sandbox(tmp_path, narrow) as aws:
        assert aws.stack
        bucket = aws.stack.output("DocumentBucket")
        aws.client("s3").put_object(Bucket=bucket, Key="invoice-details/run/INV-1.json", Body=b"{}")
        s3 = aws.client_as(SUMMARIZE, "s3")
        error = refused(lambda: s3.get_object(Bucket=bucket, Key="invoice-details/run/INV-1.json"))
        resource = f"arn:aws:s3:::{bucket}/invoice-details/run/INV-1.json"
        assert error == {
            "status": 403,
            "code": "AccessDenied",
            "message": not_authorized(aws, SUMMARIZE, "s3:GetObject", resource, NO_IDENTITY.format("s3:GetObject")),
        }


def test_without_the_key_policy_statement_sse_kms_writes_and_secrets_are_refused(tmp_path: Path) -> None:
    def drop_account_statement(template: Template) -> None:
        policy = template["Resources"]["DocumentKey"]["Properties"]["KeyPolicy"]
        policy["Statement"] = [s for s in policy["Statement"] if s.get("Sid") != "AccountAdministers"]

    with sandbox(tmp_path, drop_account_statement) as aws:
        assert aws.stack
        key_arn = aws.stack.output("DocumentKey", "Arn")
        with pytest.raises(Exception, match="AccessDenied") as caught:
            put_document(aws)
        why = "because no resource-based policy allows the kms:GenerateDataKey action"
        assert not_authorized(aws, DOWNLOAD, "kms:GenerateDataKey", key_arn, why) in str(caught.value)
        secrets = aws.client_as(DOWNLOAD, "secretsmanager")
        error = refused(lambda: secrets.get_secret_value(SecretId=aws.stack.output("LwaSecret")))
        assert error == {"status": 400, "code": "AccessDeniedException", "message": "Access to KMS is not allowed"}


def test_without_the_tls_condition_plain_http_is_allowed(tmp_path: Path) -> None:
    """The other direction: the plain-HTTP refusal of test_the_bucket_policy_refuses_plain_http is the bucket
    policy's DenyInsecureTransport statement, not something the sandbox does regardless."""

    def drop_tls_statement(template: Template) -> None:
        policy = template["Resources"]["DocumentBucketPolicy"]["Properties"]["PolicyDocument"]
        policy["Statement"] = [s for s in policy["Statement"] if s.get("Sid") != "DenyInsecureTransport"]

    with sandbox(tmp_path, drop_tls_statement) as aws:
        assert aws.stack and aws.iam
        bucket = aws.stack.output("DocumentBucket")
        aws.client("s3").put_object(Bucket=bucket, Key="runs/x", Body=b"{}")
        aws.client_as(SUMMARIZE, "s3", tls=False).get_object(Bucket=bucket, Key="runs/x")
        assert aws.iam.summary()["accessDenied"] == 0


def test_without_invoke_permission_the_state_machine_is_refused_by_lambda(tmp_path: Path) -> None:
    def drop_summarize(template: Template) -> None:
        for statement in statements(template, MACHINE):
            if statement["Action"] == "lambda:InvokeFunction":
                statement["Resource"] = [r for r in statement["Resource"] if "SummarizeRun" not in str(r)]

    with sandbox(tmp_path, drop_summarize) as aws:
        assert aws.stack
        arn = aws.stack.output(SUMMARIZE, "Arn")
        error = refused(lambda: aws.client_as(MACHINE, "lambda").invoke(FunctionName=arn, Payload=b"{}"))
        assert error["status"] == 403 and error["code"] == "AccessDeniedException"
        assert error["message"] == not_authorized(
            aws, MACHINE, "lambda:InvokeFunction", arn, NO_IDENTITY.format("lambda:InvokeFunction")
        )


def test_without_kms_decrypt_a_function_cannot_start(tmp_path: Path) -> None:
    """Lambda decrypts a function's environment (KmsKeyArn) with the function's own role before it runs."""
    with sandbox(tmp_path, lambda t: drop_action(t, SUMMARIZE, "kms:Decrypt")) as aws:
        assert aws.stack
        arn = aws.stack.output(SUMMARIZE, "Arn")
        error = refused(lambda: aws.client_as(MACHINE, "lambda").invoke(FunctionName=arn, Payload=b"{}"))
        assert error["status"] == 502 and error["code"] == "KMSAccessDeniedException"


def test_without_publish_the_state_machine_is_refused_by_sns(tmp_path: Path) -> None:
    with sandbox(tmp_path, lambda t: drop_action(t, MACHINE, "sns:Publish")) as aws:
        assert aws.stack
        topic = aws.stack.output("FinanceTopic")
        error = refused(lambda: aws.client_as(MACHINE, "sns").publish(TopicArn=topic, Message="x"))
        assert error == {
            "status": 403,
            "code": "AuthorizationError",
            "message": not_authorized(aws, MACHINE, "sns:Publish", topic, NO_IDENTITY.format("sns:Publish")),
        }
