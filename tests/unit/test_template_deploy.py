"""template.yaml as CloudFormation and IAM take it: physical names that two stacks of one account can both have,
what outlives a deleted stack, the vended-logs log group the sandbox creates by the same name, and S3 grants that
cover what the steps really read and write (run against S3 answering as AWS does, see unit_fakes.StrictS3)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

import pytest
from helpers import load_event, template_environment, template_stack
from unit_fakes import StrictS3

from abrecon import contracts, steps
from abrecon.models import TransactionsPage
from abrecon.runtime import Runtime
from abrecon.settings import Settings
from abrecon.storage import DocumentStore
from abrecon_sandbox.aws.stack import _create

TEMPLATE, STACK, RESOLVER = template_stack()
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
BUCKET = "<DocumentBucket>"  # what template_stack resolves the bucket's Ref to
S3_ACTION = {"PutObject": "s3:PutObject", "GetObject": "s3:GetObject", "HeadObject": "s3:GetObject"}


def _granted(function: str, action: str, key: str) -> bool:
    """Whether one of the function's own policy statements allows the S3 action on the object (identity policy;
    the full evaluation with resource policies is the sandbox's)."""
    arn = f"arn:aws:s3:::{BUCKET}/{key}"
    for policy in RESOURCES[function]["Properties"]["Policies"]:
        for statement in RESOLVER.resolve(policy.get("Statement", [])):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            allowed = statement["Effect"] == "Allow" and any(fnmatchcase(action, a) for a in actions)
            if allowed and any(fnmatchcase(arn, t) for t in targets):
                return True
    return False


def _ungranted(function: str, calls: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(op, key) for op, key in calls if not _granted(function, S3_ACTION[op], key)]


class OneEmptyPage:
    """getTransactions answering one last page with nothing on it."""

    def iter_transaction_pages(self, start: datetime, end: datetime, page_token: str | None = None) -> Iterator[Any]:
        yield TransactionsPage.model_validate({"transactions": [], "nextPageToken": None})


def test_fetch_transactions_may_read_back_the_line_items_its_last_invocation_wrote() -> None:
    """The resume path (a window too big for one invocation) reads runs/<run>/line-items.json: on AWS without
    s3:GetObject on it that is AccessDenied the first time a window needs a second invocation."""
    s3 = StrictS3()
    store = DocumentStore(s3, BUCKET, "<DocumentKey.Arn>")  # type: ignore[arg-type]
    settings = Settings.model_validate(template_environment())
    rt = Runtime(settings=settings, api=OneEmptyPage(), store=store, ledger=None, pacer=None)  # type: ignore[arg-type]
    event = load_event("fetch-transactions")
    first = steps.fetch_transactions(contracts.FetchTransactionsInput.model_validate(event), rt)
    resumed = first.model_dump(mode="json", by_alias=True) | {"nextPageToken": "page-2"}
    steps.fetch_transactions(contracts.FetchTransactionsInput.model_validate(event | {"resume": resumed}), rt)
    key = f"runs/{event['runId']}/line-items.json"
    assert s3.calls == [("PutObject", key), ("GetObject", key), ("PutObject", key)]
    assert _ungranted("FetchTransactionsFunction", s3.calls) == []


def test_download_document_may_store_and_look_at_its_documents_without_list_bucket() -> None:
    s3 = StrictS3()
    store = DocumentStore(s3, BUCKET, "<DocumentKey.Arn>")  # type: ignore[arg-type]
    key = "documents/ATVPDKIKX0DER/INV-1/Invoice_INV-1.pdf"
    store.put_bytes_once(key, b"%PDF-1.4\n", "application/pdf")
    store.put_bytes_once(key, b"%PDF-1.4\n", "application/pdf")  # a retried step: 412, then HeadObject
    assert ("HeadObject", key) in s3.calls
    assert _ungranted("DownloadDocumentFunction", s3.calls) == []
    assert not _granted("DownloadDocumentFunction", "s3:ListBucket", "")  # and needs none


def test_the_grant_check_catches_a_read_the_role_lacks() -> None:
    """The check above can fail: fetch-invoices may not read documents/."""
    assert _ungranted("FetchInvoicesFunction", [("GetObject", "documents/X/INV/a.pdf")]) != []


def test_the_schedule_and_the_layer_are_named_after_the_stack() -> None:
    """samconfig.toml deploys abrecon-dev and abrecon-prod to one region: schedule names are unique per group and
    layer names per region, so each must carry the stack name."""
    _, stack, resolver = template_stack()
    schedule = RESOURCES["StartRunFunction"]["Properties"]["Events"]["Daily"]
    assert schedule["Type"] == "ScheduleV2"
    dev, prod = [], []
    for stack_name, names in (("abrecon-dev", dev), ("abrecon-prod", prod)):
        stack.name = stack_name
        names.append(resolver.resolve(schedule["Properties"]["Name"]))
        names.append(resolver.resolve(RESOURCES["SharedLayer"]["Properties"]["LayerName"]))
    assert dev == ["abrecon-dev-daily", "abrecon-dev-abrecon"]
    assert set(dev).isdisjoint(prod)


NAME_PROPERTIES = {
    "AWS::KMS::Alias": "AliasName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::CloudWatch::Dashboard": "DashboardName",
    "AWS::Serverless::StateMachine": "Name",
    "AWS::Serverless::LayerVersion": "LayerName",
    "AWS::Serverless::Function": "FunctionName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::Events::Rule": "Name",
}


def test_every_physical_name_the_template_sets_carries_the_stack_name() -> None:
    """A name the template sets is the same in every stack unless it includes ${AWS::StackName}; a name it leaves
    out is generated by CloudFormation from the stack name."""
    _, stack, resolver = template_stack()
    stack.name = "abrecon-stack-under-test"
    named = 0
    for logical_id, resource in RESOURCES.items():
        prop = NAME_PROPERTIES.get(resource["Type"])
        value = resource.get("Properties", {}).get(prop) if prop else None
        if value is not None:
            named += 1
            assert stack.name in str(resolver.resolve(value)), logical_id
        for event_name, event in resource.get("Properties", {}).get("Events", {}).items():
            if event["Type"] == "ScheduleV2":
                named += 1
                assert stack.name in str(resolver.resolve(event["Properties"].get("Name", ""))), event_name
    assert named >= 8  # alias, log group, three alarms, dashboard, state machine, layer, schedule


STATEFUL = ["DocumentKey", "DocumentBucket", "DocumentBucketPolicy", "LwaSecret", "LedgerTable"]


@pytest.mark.parametrize("logical_id", [*STATEFUL, "ReconcileStateMachineLogs"])
def test_what_holds_data_outlives_the_stack(logical_id: str) -> None:
    """DeletionPolicy defaults to Delete: a deleted key makes every object encrypted under it unreadable."""
    resource = RESOURCES[logical_id]
    assert (resource.get("DeletionPolicy"), resource.get("UpdateReplacePolicy")) == ("Retain", "Retain")


def test_the_execution_log_group_has_a_vended_logs_name_and_the_sandbox_creates_that_one() -> None:
    """/aws/vendedlogs/ keeps Step Functions from growing the account's 5,120-character logs resource policy."""
    _, stack, resolver = template_stack()
    stack.name = "abrecon-sandbox"
    props = resolver.resolve(RESOURCES["ReconcileStateMachineLogs"]["Properties"])
    assert props["LogGroupName"] == "/aws/vendedlogs/states/abrecon-sandbox-reconcile"
    key_policy = resolver.resolve(RESOURCES["DocumentKey"]["Properties"]["KeyPolicy"])
    (logs,) = [s for s in key_policy["Statement"] if s["Sid"] == "CloudWatchLogsEncryptsTheExecutionLog"]
    encrypts = logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
    assert encrypts.endswith(":log-group:/aws/vendedlogs/states/abrecon-sandbox-reconcile")  # that one group only

    created: list[str] = []

    class Logs:
        def create_log_group(self, logGroupName: str) -> None:
            created.append(logGroupName)

    def client(service: str) -> Any:
        assert service == "logs"
        return Logs()

    _create("AWS::Logs::LogGroup", "ReconcileStateMachineLogs", props, stack, client, {}, resolver)
    assert created == ["/aws/vendedlogs/states/abrecon-sandbox-reconcile"]
    assert stack.output("ReconcileStateMachineLogs", "Arn").endswith(":log-group:" + created[0] + ":*")
