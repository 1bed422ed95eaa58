"""Create the template's resources in moto, so the sandbox runs what deploys and cannot drift from it.

template.yaml is read as CloudFormation reads it (cfn-lint's decoder handles the short-form tags); intrinsic
functions are resolved against the physical ids of what was created. Resources with no local meaning (the
layer: the package is importable here; the schedule; log delivery) are listed, not faked.
"""

from __future__ import annotations

import json
import re
import uuid
import warnings
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from cfnlint.decode import decode

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
# moto accepts any credentials; these are its documented dummies, not secrets.
MOTO_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}  # nosec B105
SUB_VARIABLE = re.compile(r"\$\{([^}!]+)\}")


class TemplateError(Exception):
    """template.yaml cannot be read, or uses something the sandbox does not know how to create."""


@dataclass
class Stack:
    """What was created: physical ids by logical id, attributes, and the functions to serve locally."""

    name: str
    root: Path
    parameters: dict[str, str]
    refs: dict[str, str] = field(default_factory=dict)
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)
    functions: dict[str, Any] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    # The template's Outputs, as the CloudFormation stack registered in moto has them.
    outputs: dict[str, str] = field(default_factory=dict)

    def output(self, logical_id: str, attribute: str | None = None) -> str:
        """The Ref (or attribute) value of a created resource."""
        return self.attributes[(logical_id, attribute)] if attribute else self.refs[logical_id]


def load_template(path: Path) -> dict[str, Any]:
    """Read template.yaml with CloudFormation's tags; fails loudly on a template CloudFormation would reject."""
    template, problems = decode(str(path))
    if template is None or problems:
        raise TemplateError(f"cannot read {path}: {problems}")
    return dict(template)


class Resolver:
    """Resolve intrinsic functions against the stack built so far."""

    def __init__(self, stack: Stack, conditions: dict[str, Any], mappings: dict[str, Any] | None = None) -> None:
        self._stack = stack
        self._conditions = conditions
        self._mappings = mappings or {}

    def pseudo(self, name: str) -> str | None:
        """Pseudo parameters (AWS::Region and friends)."""
        return {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::StackName": self._stack.name,
            "AWS::URLSuffix": "amazonaws.com",
        }.get(name)

    def ref(self, name: str) -> str:
        """The value of Ref name."""
        value = self.pseudo(name)
        for known in (self._stack.parameters, self._stack.refs):
            value = known.get(name, value) if value is None else value
        if value is None:
            raise TemplateError(f"Ref {name}: not created yet or not known to the sandbox")
        return value

    def get_att(self, logical_id: str, attribute: str) -> str:
        """The value of Fn::GetAtt."""
        try:
            return self._stack.attributes[(logical_id, attribute)]
        except KeyError as exc:
            raise TemplateError(f"GetAtt {logical_id}.{attribute}: not known to the sandbox") from exc

    def condition(self, name: str) -> bool:
        """Evaluate a named condition."""
        return bool(self.resolve(self._conditions[name]))

    def resolve(self, value: Any) -> Any:
        """Resolve every intrinsic function inside value."""
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(logical_id, attribute)
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::FindInMap":
                name, top, second = (str(self.resolve(v)) for v in arg)
                try:
                    return self._mappings[name][top][second]
                except KeyError as exc:
                    raise TemplateError(f"FindInMap {name}.{top}.{second}: no such entry") from exc
            if key == "Fn::Join":
                return str(arg[0]).join(str(self.resolve(v)) for v in arg[1])
            if key == "Fn::Equals":
                left, right = (self.resolve(v) for v in arg)
                return left == right
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::If":
                name, when_true, when_false = arg
                return self.resolve(when_true if self.condition(name) else when_false)
            if key == "Condition":
                return self.condition(arg)
        return {k: self.resolve(v) for k, v in value.items()}

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name and self.pseudo(name) is None:
                logical_id, attribute = name.split(".", 1)
                return self.get_att(logical_id, attribute)
            return self.ref(name)

        return SUB_VARIABLE.sub(replace, text)


def _tags(name: str) -> str:
    return re.sub(r"[^a-z0-9-]", "", name.lower())


def build_stack(template_path: Path, stack_name: str, parameter_overrides: dict[str, str], endpoint_url: str) -> Stack:
    """Create every resource of the template in moto at endpoint_url, in dependency order."""
    from abrecon_sandbox.aws.parameters import check_parameters

    template = load_template(template_path)
    declared: dict[str, Any] = template.get("Parameters", {})
    unknown = set(parameter_overrides) - set(declared)
    if unknown:
        raise TemplateError(f"unknown template parameters: {sorted(unknown)}")
    defaults = {name: str(p["Default"]) for name, p in declared.items() if "Default" in p}
    values = {**defaults, **parameter_overrides}
    check_parameters(declared, values)  # before anything is created, as CloudFormation does
    stack = Stack(name=stack_name, root=template_path.parent, parameters=values)
    resolver = Resolver(stack, template.get("Conditions", {}), template.get("Mappings", {}))
    session = boto3.session.Session(
        aws_access_key_id=MOTO_CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key=MOTO_CREDENTIALS["aws_secret_access_key"],
        region_name=REGION,
    )

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=endpoint_url)  # type: ignore[call-overload]

    resources: dict[str, Any] = template["Resources"]
    globals_function = template.get("Globals", {}).get("Function", {})
    order = [
        "AWS::KMS::Key",
        "AWS::KMS::Alias",
        "AWS::S3::Bucket",
        "AWS::S3::BucketPolicy",
        "AWS::SecretsManager::Secret",
        "AWS::DynamoDB::Table",
        "AWS::SNS::Topic",
        "AWS::SNS::Subscription",
        "AWS::Logs::LogGroup",
        "AWS::Serverless::LayerVersion",
        "AWS::Serverless::Function",
        "AWS::Serverless::StateMachine",
        *_OPERATIONS_TYPES,
    ]
    strangers = sorted({r["Type"] for r in resources.values()} - set(order))
    if strangers:
        raise TemplateError(f"the sandbox does not know how to create {strangers}; teach sandbox/stack.py")
    for logical_id, resource in resources.items():  # SAM's implicit role of a state machine, <LogicalId>Role
        if resource["Type"] == "AWS::Serverless::StateMachine" and "Role" not in resource.get("Properties", {}):
            # Named as the sandbox's IAM (iam.py) names the roles SAM generates: the requests' aws:PrincipalArn.
            role_name = f"{stack.name}-{logical_id}Role"[:64]
            stack.attributes[(f"{logical_id}Role", "Arn")] = f"arn:aws:iam::{ACCOUNT_ID}:role/{role_name}"
    for resource_type in order:
        for logical_id, resource in resources.items():
            if resource["Type"] != resource_type:
                continue
            if "Condition" in resource and not resolver.condition(resource["Condition"]):
                stack.skipped.append(f"{logical_id} (condition {resource['Condition']} is false)")
                continue
            props = resolver.resolve(resource.get("Properties", {}))
            _create(resource_type, logical_id, props, stack, client, resource, globals_function, resolver)
    _register_stack(template, resolver, stack, client)
    return stack


def _register_stack(template: dict[str, Any], resolver: Resolver, stack: Stack, client: Any) -> None:
    """A CloudFormation stack of the same name whose Outputs are the sandbox's physical ids.

    Operator tools find a deployed stack's resources through its Outputs (`abrecon --stack NAME ...`); with this
    they work unchanged against the sandbox. Its one resource is a WaitConditionHandle, which creates nothing.
    """
    outputs = {
        name: str(resolver.resolve(output["Value"]))
        for name, output in template.get("Outputs", {}).items()
        if "Condition" not in output or resolver.condition(output["Condition"])
    }
    body = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"abrecon sandbox: the Outputs of {stack.name}, pointing at the resources in local AWS",
        "Resources": {"SandboxResources": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {name: {"Value": value} for name, value in outputs.items()},
    }
    with warnings.catch_warnings():  # moto says it does not "support" the handle: it has nothing to create
        warnings.filterwarnings("ignore", message="Tried to parse AWS::CloudFormation::WaitConditionHandle")
        client("cloudformation").create_stack(StackName=stack.name, TemplateBody=json.dumps(body))
    stack.outputs = outputs


# Operations resources: created in moto so their shape is checked by its API; nothing in the sandbox fires them
# (moto emits no Step Functions status events and evaluates no alarms), which the sandbox lists as skipped.
_OPERATIONS_TYPES = (
    "AWS::Events::Rule",
    "AWS::SNS::TopicPolicy",
    "AWS::CloudWatch::Alarm",
    "AWS::CloudWatch::Dashboard",
)


def _create_operations(resource_type: str, logical_id: str, props: dict[str, Any], stack: Stack, client: Any) -> None:
    arn_prefix = f"arn:aws:{{}}:{REGION}:{ACCOUNT_ID}"
    if resource_type == "AWS::Events::Rule":
        name = props.get("Name") or f"{stack.name}-{logical_id}"
        events = client("events")
        arn = events.put_rule(
            Name=name,
            EventPattern=json.dumps(props["EventPattern"]),
            State=props.get("State", "ENABLED"),
            Description=props.get("Description", ""),
        )["RuleArn"]
        answer = events.put_targets(Rule=name, Targets=props.get("Targets", []))
        if answer.get("FailedEntryCount"):
            raise TemplateError(f"{logical_id}: targets refused: {answer['FailedEntries']}")
        stack.refs[logical_id] = name
        stack.attributes[(logical_id, "Arn")] = arn
        stack.skipped.append(f"{logical_id} (created; moto emits no Step Functions status-change events)")
    elif resource_type == "AWS::SNS::TopicPolicy":
        policy = json.dumps(props["PolicyDocument"])
        for topic in props["Topics"]:
            client("sns").set_topic_attributes(TopicArn=topic, AttributeName="Policy", AttributeValue=policy)
        stack.refs[logical_id] = ",".join(props["Topics"])
    elif resource_type == "AWS::CloudWatch::Alarm":
        name = props.get("AlarmName") or f"{stack.name}-{logical_id}"
        client("cloudwatch").put_metric_alarm(AlarmName=name, **{k: v for k, v in props.items() if k != "AlarmName"})
        stack.refs[logical_id] = name
        stack.attributes[(logical_id, "Arn")] = f"{arn_prefix.format('cloudwatch')}:alarm:{name}"
        stack.skipped.append(f"{logical_id} (created; moto does not evaluate alarms)")
    elif resource_type == "AWS::CloudWatch::Dashboard":
        name = props.get("DashboardName") or f"{stack.name}-{logical_id}"
        json.loads(props["DashboardBody"])  # CloudWatch refuses a body that is not JSON; so does the sandbox
        client("cloudwatch").put_dashboard(DashboardName=name, DashboardBody=props["DashboardBody"])
        stack.refs[logical_id] = name


def _create(
    resource_type: str,
    logical_id: str,
    props: dict[str, Any],
    stack: Stack,
    client: Any,
    resource: dict[str, Any],
    globals_function: dict[str, Any],
    resolver: Resolver,
) -> None:
    arn_prefix = f"arn:aws:{{}}:{REGION}:{ACCOUNT_ID}"
    if resource_type in _OPERATIONS_TYPES:
        _create_operations(resource_type, logical_id, props, stack, client)
    elif resource_type == "AWS::KMS::Key":
        key = client("kms").create_key(Description=props.get("Description", ""), Policy=json.dumps(props["KeyPolicy"]))[
            "KeyMetadata"
        ]
        if props.get("EnableKeyRotation"):
            client("kms").enable_key_rotation(KeyId=key["KeyId"])
        stack.refs[logical_id] = key["KeyId"]
        stack.attributes[(logical_id, "Arn")] = key["Arn"]
    elif resource_type == "AWS::KMS::Alias":
        client("kms").create_alias(AliasName=props["AliasName"], TargetKeyId=props["TargetKeyId"])
        stack.refs[logical_id] = props["AliasName"]
    elif resource_type == "AWS::S3::Bucket":
        name = props.get("BucketName") or f"{_tags(stack.name)}-{_tags(logical_id)}-{uuid.uuid4().hex[:8]}"
        s3 = client("s3")
        s3.create_bucket(Bucket=name)
        if "BucketEncryption" in props:
            # CloudFormation's rule shape differs from the S3 API's by one name.
            rules = [
                {
                    "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"],
                    **{k: v for k, v in rule.items() if k != "ServerSideEncryptionByDefault"},
                }
                for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            ]
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        if "PublicAccessBlockConfiguration" in props:
            s3.put_public_access_block(
                Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
            )
        if "VersioningConfiguration" in props:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration=props["VersioningConfiguration"])
        if "OwnershipControls" in props:
            s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=props["OwnershipControls"])
        stack.refs[logical_id] = name
        stack.attributes[(logical_id, "Arn")] = f"arn:aws:s3:::{name}"
    elif resource_type == "AWS::S3::BucketPolicy":
        # Applied as deployed; moto itself does not enforce it: the sandbox's IAM gate (iam.py) evaluates it, with
        # its conditions, on every request of a function or the state machine.
        client("s3").put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(props["PolicyDocument"]))
        stack.refs[logical_id] = props["Bucket"]
    elif resource_type == "AWS::SecretsManager::Secret":
        name = props.get("Name") or f"{stack.name}-{logical_id}"
        secret = client("secretsmanager").create_secret(
            Name=name,
            KmsKeyId=props.get("KmsKeyId"),
            SecretString=props.get("SecretString", "{}"),
            Description=props.get("Description", ""),
        )
        stack.refs[logical_id] = secret["ARN"]
    elif resource_type == "AWS::DynamoDB::Table":
        name = props.get("TableName") or f"{stack.name}-{logical_id}"
        args = {
            k: props[k]
            for k in ("AttributeDefinitions", "KeySchema", "BillingMode", "GlobalSecondaryIndexes", "SSESpecification")
            if k in props
        }
        if "SSESpecification" in args:
            sse = args["SSESpecification"]
            args["SSESpecification"] = {
                "Enabled": sse.get("SSEEnabled", False),
                "SSEType": sse.get("SSEType", "KMS"),
                "KMSMasterKeyId": sse.get("KMSMasterKeyId"),
            }
        client("dynamodb").create_table(TableName=name, **args)
        stack.refs[logical_id] = name
        stack.attributes[(logical_id, "Arn")] = f"{arn_prefix.format('dynamodb')}:table/{name}"
    elif resource_type == "AWS::SNS::Topic":
        attributes = {k: str(props[k]) for k in ("KmsMasterKeyId", "DisplayName") if k in props}
        topic = client("sns").create_topic(
            Name=props.get("TopicName") or f"{stack.name}-{logical_id}", Attributes=attributes
        )
        stack.refs[logical_id] = topic["TopicArn"]
        stack.attributes[(logical_id, "TopicName")] = topic["TopicArn"].rsplit(":", 1)[1]
    elif resource_type == "AWS::SNS::Subscription":
        sub = client("sns").subscribe(
            TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"]
        )
        stack.refs[logical_id] = sub["SubscriptionArn"]
    elif resource_type == "AWS::Logs::LogGroup":
        # The template's own name, as deploys; without one CloudFormation makes up "<stack>-<logical id>-<suffix>".
        name = props.get("LogGroupName") or f"{stack.name}-{logical_id}-{uuid.uuid4().hex[:12].upper()}"
        client("logs").create_log_group(logGroupName=name)
        stack.refs[logical_id] = name
        stack.attributes[(logical_id, "Arn")] = f"{arn_prefix.format('logs')}:log-group:{name}:*"
    elif resource_type == "AWS::Serverless::LayerVersion":
        stack.skipped.append(f"{logical_id} (layer: its package is importable in the sandbox's environment)")
        layer_name = props.get("LayerName") or logical_id
        stack.refs[logical_id] = f"{arn_prefix.format('lambda')}:layer:{layer_name}:1"
    elif resource_type == "AWS::Serverless::Function":
        _function(logical_id, props, stack, globals_function, resolver, arn_prefix)
        _schedules(logical_id, props, stack, client)
    elif resource_type == "AWS::Serverless::StateMachine":
        _state_machine(logical_id, props, stack, client, arn_prefix)
        for event_name, event in props.get("Events", {}).items():
            stack.skipped.append(f"{logical_id}.{event_name} ({event['Type']}: the sandbox starts executions itself)")


def _function(
    logical_id: str,
    props: dict[str, Any],
    stack: Stack,
    globals_function: dict[str, Any],
    resolver: Resolver,
    arn_prefix: str,
) -> None:
    from abrecon_sandbox.aws.lambdas import FunctionSpec

    merged = {**resolver.resolve(globals_function), **props}
    variables = {
        **resolver.resolve(globals_function).get("Environment", {}).get("Variables", {}),
        **props.get("Environment", {}).get("Variables", {}),
    }
    name = props.get("FunctionName") or f"{stack.name}-{logical_id}"
    arn = f"{arn_prefix.format('lambda')}:function:{name}"
    stack.functions[logical_id] = FunctionSpec(
        logical_id=logical_id,
        name=name,
        arn=arn,
        code_dir=(stack.root / merged["CodeUri"]).resolve(),
        handler=merged["Handler"],
        environment={k: str(v) for k, v in variables.items()},
        timeout_seconds=int(merged.get("Timeout", 3)),
        memory_mb=int(merged.get("MemorySize", 128)),
    )
    stack.refs[logical_id] = name
    stack.attributes[(logical_id, "Arn")] = arn
    for event_name, event in props.get("Events", {}).items():
        if event["Type"] == "ScheduleV2":
            _check_schedule(f"{logical_id}.{event_name}", event.get("Properties", {}))
        else:
            stack.skipped.append(f"{logical_id}.{event_name} ({event['Type']}: the sandbox starts executions itself)")


def _schedules(logical_id: str, props: dict[str, Any], stack: Stack, client: Any) -> None:
    """A function's ScheduleV2 events as SAM makes them: an EventBridge Scheduler schedule each, logical id
    <function><event>, named so unless the event names it. Created in moto so operator tools read it as deployed;
    moto fires no schedule, the sandbox starts executions itself."""
    for event_name, event in props.get("Events", {}).items():
        if event["Type"] != "ScheduleV2":
            continue
        schedule_id = f"{logical_id}{event_name}"
        spec = event.get("Properties", {})
        name = spec.get("Name") or schedule_id
        target = {"Arn": stack.attributes[(logical_id, "Arn")], "RoleArn": f"arn:aws:iam::{ACCOUNT_ID}:role/{name}"}
        if "Input" in spec:
            target["Input"] = spec["Input"]
        window = dict(spec.get("FlexibleTimeWindow", {"Mode": "OFF"}))
        if "MaximumWindowInMinutes" in window:  # a parameter: a string once resolved, a number to the API
            window["MaximumWindowInMinutes"] = int(window["MaximumWindowInMinutes"])
        client("scheduler").create_schedule(
            Name=name,
            ScheduleExpression=spec["ScheduleExpression"],
            ScheduleExpressionTimezone=spec.get("ScheduleExpressionTimezone", "UTC"),
            FlexibleTimeWindow=window,
            State=spec.get("State", "ENABLED"),
            Target=target,
            **({"Description": spec["Description"]} if "Description" in spec else {}),
        )
        stack.refs[schedule_id] = name
        stack.skipped.append(f"{schedule_id} (schedule created; moto fires none, the sandbox starts executions itself)")


def _state_machine_role_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT_ID}:role/{name}-role"


SCHEDULE_NAME = re.compile(r"[0-9a-zA-Z._-]{1,64}")


def _check_schedule(where: str, props: dict[str, Any]) -> None:
    """What EventBridge Scheduler refuses when the stack creates the schedule, though nothing here runs it."""
    name = props.get("Name")
    if name is not None and not SCHEDULE_NAME.fullmatch(str(name)):
        raise TemplateError(f"{where}: schedule name {name!r} is not 1-64 of [0-9a-zA-Z._-] (a shorter stack name?)")
    zone = props.get("ScheduleExpressionTimezone")
    if zone is not None:
        try:
            zoneinfo.ZoneInfo(str(zone))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise TemplateError(f"{where}: {zone!r} is not a time zone of the IANA database") from exc


def _state_machine(logical_id: str, props: dict[str, Any], stack: Stack, client: Any, arn_prefix: str) -> None:
    definition = (stack.root / props["DefinitionUri"]).read_text()
    substitutions = {k: str(v) for k, v in props.get("DefinitionSubstitutions", {}).items()}
    missing = sorted(set(SUB_VARIABLE.findall(definition)) - set(substitutions))
    if missing:
        raise TemplateError(f"{props['DefinitionUri']} uses {missing} with no DefinitionSubstitutions entry")
    definition = SUB_VARIABLE.sub(lambda m: substitutions[m.group(1)], definition)
    name = props.get("Name") or f"{stack.name}-{logical_id}"
    machine = client("stepfunctions").create_state_machine(
        name=name,
        definition=definition,
        type=props.get("Type", "STANDARD"),
        roleArn=_state_machine_role_arn(name),
    )
    stack.refs[logical_id] = machine["stateMachineArn"]
    stack.attributes[(logical_id, "Name")] = name
