"""template.yaml, the operations part: schedule, alerts for runs that did not finish, alarms, dashboard, IAM.

The sandbox creates these resources in moto but nothing there fires them (no Step Functions status events, no
alarm evaluation), so their shape is checked here, against what the code publishes.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

import pytest
from helpers import ROOT, TEMPLATE

from abrecon.contracts import RunSummary
from abrecon_sandbox.aws.stack import load_template

LAYER = ROOT / "layers" / "abrecon" / "abrecon"
METRIC_NAME = re.compile(r"^[A-Z][a-z]+(?:[A-Z][a-z]*)+$")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = template["Resources"]
    return found


def _published_metrics() -> set[str]:
    """CamelCase string literals of the layer: every metric name a step publishes is one (a typo is not)."""
    names: set[str] = set()
    for path in LAYER.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and METRIC_NAME.match(node.value):
                names.add(node.value)
    return names


def test_the_schedule_starts_runs_through_start_run_with_the_scheduled_time(resources: dict[str, Any]) -> None:
    function = resources["StartRunFunction"]["Properties"]
    (event,) = function["Events"].values()
    props = event["Properties"]
    assert props["ScheduleExpression"] == {"Ref": "ScheduleExpression"}
    assert props["ScheduleExpressionTimezone"] == {"Ref": "ScheduleTimeZone"}
    condition, flexible, off = props["FlexibleTimeWindow"]["Fn::If"]
    assert condition == "HasFlexibleWindow" and off == {"Mode": "OFF"}
    assert flexible == {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": {"Ref": "ScheduleFlexibleWindowMinutes"}}
    assert json.loads(props["Input"])["scheduledTime"] == "<aws.scheduler.scheduled-time>"
    machine = function["Environment"]["Variables"]["STATE_MACHINE_ARN"]["Fn::Sub"]
    assert machine.endswith(":stateMachine:${AWS::StackName}-reconcile")
    assert resources["ReconcileStateMachine"]["Properties"]["Name"] == {"Fn::Sub": "${AWS::StackName}-reconcile"}
    assert "Events" not in resources["ReconcileStateMachine"]["Properties"]  # one schedule, not two


def test_a_run_that_does_not_finish_alerts_operations_and_finance(resources: dict[str, Any]) -> None:
    rule = resources["RunDidNotFinishRule"]["Properties"]
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.states"]
    assert pattern["detail-type"] == ["Step Functions Execution Status Change"]
    assert sorted(pattern["detail"]["status"]) == ["ABORTED", "FAILED", "TIMED_OUT"]
    assert pattern["detail"]["stateMachineArn"] == [{"Ref": "ReconcileStateMachine"}]  # not the Map's children
    targets = {t["Id"]: t for t in rule["Targets"]}
    assert targets["operations"]["Arn"] == {"Ref": "OperationsTopic"}
    assert targets["finance"]["Arn"] == {"Ref": "FinanceTopic"}
    for target in targets.values():
        transformer = target["InputTransformer"]
        template = transformer["InputTemplate"]
        used = set(re.findall(r"<([a-z]+)>", template))
        assert used <= set(transformer["InputPathsMap"]), used
        assert all(path.startswith("$.") for path in transformer["InputPathsMap"].values())
        text = json.loads(re.sub(r"<[a-z]+>", "x", template))  # SNS gets a JSON string: plain text
        assert isinstance(text, str) and ("did not finish" in text or "ended" in text)
    assert "abrecon start" in json.loads(
        re.sub(r"<[a-z]+>", "x", targets["operations"]["InputTransformer"]["InputTemplate"])
    )


def test_only_the_rule_and_the_stacks_alarms_may_publish_to_the_topics(resources: dict[str, Any]) -> None:
    policy = resources["NotificationTopicsPolicy"]["Properties"]
    assert policy["Topics"] == [{"Ref": "FinanceTopic"}, {"Ref": "OperationsTopic"}]
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    events = statements["RunDidNotFinishRulePublishes"]
    assert events["Principal"] == {"Service": "events.amazonaws.com"} and events["Action"] == "sns:Publish"
    assert events["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["RunDidNotFinishRule", "Arn"]}}}
    alarms = statements["StackAlarmsPublish"]
    assert alarms["Resource"] == {"Ref": "OperationsTopic"}
    assert "alarm:${AWS::StackName}-*" in alarms["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"]
    for alarm in (r["Properties"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"):
        assert alarm["AlarmName"]["Fn::Sub"].startswith("${AWS::StackName}-")  # inside the SourceArn pattern
    key_policy = resources["DocumentKey"]["Properties"]["KeyPolicy"]["Statement"]
    (use,) = [s for s in key_policy if s["Sid"] == "AlertsPublishToEncryptedTopics"]
    assert sorted(use["Principal"]["Service"]) == ["cloudwatch.amazonaws.com", "events.amazonaws.com"]
    assert sorted(use["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]


def test_alarms_watch_failed_and_timed_out_runs_and_invoice_failures(resources: dict[str, Any]) -> None:
    alarms = {name: r["Properties"] for name, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    by_metric = {(a["Namespace"], a["MetricName"]): a for a in alarms.values()}
    for metric in ("ExecutionsFailed", "ExecutionsTimedOut"):
        alarm = by_metric[("AWS/States", metric)]
        assert alarm["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Ref": "ReconcileStateMachine"}}]
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    failures = by_metric[("abrecon", "RunInvoicesFailed")]
    assert (failures["Threshold"], failures["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    assert failures["Dimensions"] == [{"Name": "service", "Value": "abrecon"}]  # what Powertools Metrics adds
    assert "RunInvoicesFailed" in _published_metrics()
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [{"Ref": "OperationsTopic"}]
        assert alarm["TreatMissingData"] == "notBreaching"  # no run, no false alarm


def test_the_dashboard_is_json_and_shows_metrics_the_steps_publish(resources: dict[str, Any]) -> None:
    body_template, variables = resources["OperationsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    assert set(variables) == {"Machine", "Bucket"}
    body = json.loads(re.sub(r"\$\{[^}]+\}", "x", body_template))
    widgets = body["widgets"]
    names: set[str] = set()
    for widget in (w for w in widgets if w["type"] == "metric"):
        namespace = None
        for row in widget["properties"]["metrics"]:
            if row[0] == "...":
                continue
            namespace = namespace if row[0] == "." else row[0]
            if namespace == "abrecon":
                names.add(row[1])
    assert {"InvoicesStored", "DocumentsStored", "RunInvoicesFailed", "RunInvoicesDeferred", "ThrottleWaits"} <= names
    published = _published_metrics()
    assert names <= published, names - published
    functions = {n for n, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}
    assert set(re.findall(r'"\$\{(\w+Function)\}"', body_template)) == functions  # every function's errors


def _statements(resources: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, resource in resources.items():
        for policy in resource.get("Properties", {}).get("Policies", []):
            if isinstance(policy, dict):
                found += [(name, s) for s in policy.get("Statement", [])]
    return found


def test_roles_name_their_actions_and_use_wildcard_resources_only_where_aws_requires(
    resources: dict[str, Any],
) -> None:
    statements = _statements(resources)
    assert len(statements) > 20
    for name, statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert not any("*" in action for action in actions), (name, actions)
        if statement.get("Resource") == "*":
            # CloudWatch Logs log delivery for the state machine takes no resource-level permissions.
            assert statement.get("Sid") == "VendedLogDelivery", (name, statement)
    start_run = [s for name, s in statements if name == "StartRunFunction"]
    assert {a for s in start_run for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])} == {
        "states:StartExecution",
        "states:DescribeExecution",
        "kms:Decrypt",
    }


def test_notify_finance_sets_message_attributes_from_the_run_summary() -> None:
    definition = json.loads((ROOT / "statemachine" / "reconcile.asl.json").read_text())
    params = definition["States"]["Notify finance"]["Parameters"]
    attributes = params["MessageAttributes"]
    aliases = {field.alias or name for name, field in RunSummary.model_fields.items()}
    assert attributes["status"] == {"DataType": "String", "StringValue.$": "$.summary.outcome"}
    assert len(attributes) <= 10  # SNS's limit per message
    for name, attribute in attributes.items():
        value = attribute["StringValue.$"]
        field = re.search(r"\$\.summary\.([A-Za-z]+)", value)
        assert field and field.group(1) in aliases, (name, value)
        if attribute["DataType"] == "Number":
            assert value.startswith("States.Format('{}', "), name  # SNS takes numbers as strings
    assert {"failed", "deferred", "pending", "invoices", "creditMemos"} <= set(attributes)
