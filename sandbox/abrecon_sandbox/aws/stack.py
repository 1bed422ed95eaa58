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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

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
            intrinsic = self._INTRINSICS.get(key)
            if intrinsic is not None:
                return intrinsic(self, arg)
        return {k: self.resolve(v) for k, v in value.items()}

    def _get_att(self, arg: Any) -> str:
        logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
        return self.get_att(logical_id, attribute)

    def _find_in_map(self, arg: Any) -> Any:
        name, top, second = (str(self.resolve(v)) for v in arg)
        try:
            return self._mappings[name][top][second]
        except KeyError as exc:
            raise TemplateError(f"FindInMap {name}.{top}.{second}: no such entry") from exc

    def _join(self, arg: Any) -> str:
        return str(arg[0]).join(str(self.resolve(v)) for v in arg[1])

    def _equals(self, arg: Any) -> bool:
        left, right = (self.resolve(v) for v in arg)
        return bool(left == right)

    def _not(self, arg: Any) -> bool:
        return not self.resolve(arg[0])

    def _if(self, arg: Any) -> Any:
        name, when_true, when_false = arg
        return self.resolve(when_true if self.condition(name) else when_false)

    # The intrinsic functions the template uses, by their key in a one-key mapping.
    _INTRINSICS: ClassVar[dict[str, Callable[[Resolver, Any], Any]]] = {
        "Ref": ref,
        "Fn::GetAtt": _get_att,
        "Fn::Sub": lambda self, arg: self._sub(arg),
        "Fn::FindInMap": _find_in_map,
        "Fn::Join": _join,
        "Fn::Equals": _equals,
        "Fn::Not": _not,
        "Fn::If": _if,
        "Condition": condition,
    }

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
    strangers = sorted({r["Type"] for r in resources.values()} - set(CREATORS))
    if strangers:
        raise TemplateError(f"the sandbox does not know how to create {strangers}; teach stack.CREATORS")
    for logical_id, resource in resources.items():  # SAM's implicit role of a state machine, <LogicalId>Role
        if resource["Type"] == "AWS::Serverless::StateMachine" and "Role" not in resource.get("Properties", {}):
            # Named as the sandbox's IAM (iam.py) names the roles SAM generates: the requests' aws:PrincipalArn.
            role_name = f"{stack.name}-{logical_id}Role"[:64]
            stack.attributes[(f"{logical_id}Role", "Arn")] = f"arn:aws:iam::{ACCOUNT_ID}:role/{role_name}"
    for resource_type in CREATORS:
        for logical_id, resource in resources.items():
            if resource["Type"] != resource_type:
                continue
            if "Condition" in resource and not resolver.condition(resource["Condition"]):
                stack.skipped.append(f"{logical_id} (condition {resource['Condition']} is false)")
                continue
            props = resolver.resolve(resource.get("Properties", {}))
            _create(resource_type, logical_id, props, stack, client, globals_function, resolver)
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


@dataclass(frozen=True)
class _New:
    """One resource to create: its logical id and resolved properties, and what a creator needs from the stack."""

    logical_id: str
    props: dict[str, Any]
    stack: Stack
    client: Callable[[str], Any]
    globals_function: dict[str, Any]
    resolver: Resolver

    def name(self, prop: str) -> str:
        """The name the template gives in prop, else CloudFormation's <stack>-<logical id>."""
        return str(self.props.get(prop) or f"{self.stack.name}-{self.logical_id}")

    def created(self, ref: str, arn: str | None = None) -> None:
        """Record the resource's Ref value and, if it has one, its Arn attribute."""
        self.stack.refs[self.logical_id] = ref
        if arn is not None:
            self.stack.attributes[(self.logical_id, "Arn")] = arn


def _arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT_ID}:{resource}"


def _kms_key(new: _New) -> None:
    kms = new.client("kms")
    key = kms.create_key(Description=new.props.get("Description", ""), Policy=json.dumps(new.props["KeyPolicy"]))
    metadata = key["KeyMetadata"]
    if new.props.get("EnableKeyRotation"):
        kms.enable_key_rotation(KeyId=metadata["KeyId"])
    new.created(metadata["KeyId"], metadata["Arn"])


def _kms_alias(new: _New) -> None:
    new.client("kms").create_alias(AliasName=new.props["AliasName"], TargetKeyId=new.props["TargetKeyId"])
    new.created(new.props["AliasName"])


def _bucket(new: _New) -> None:
    props = new.props
    name = props.get("BucketName") or f"{_tags(new.stack.name)}-{_tags(new.logical_id)}-{uuid.uuid4().hex[:8]}"
    s3 = new.client("s3")
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
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"])
    if "VersioningConfiguration" in props:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration=props["VersioningConfiguration"])
    if "OwnershipControls" in props:
        s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=props["OwnershipControls"])
    new.created(name, f"arn:aws:s3:::{name}")


def _bucket_policy(new: _New) -> None:
    # Applied as deployed; moto itself does not enforce it: the sandbox's IAM gate (iam.py) evaluates it, with
    # its conditions, on every request of a function or the state machine.
    new.client("s3").put_bucket_policy(Bucket=new.props["Bucket"], Policy=json.dumps(new.props["PolicyDocument"]))
    new.created(new.props["Bucket"])


def _secret(new: _New) -> None:
    secret = new.client("secretsmanager").create_secret(
        Name=new.name("Name"),
        KmsKeyId=new.props.get("KmsKeyId"),
        SecretString=new.props.get("SecretString", "{}"),
        Description=new.props.get("Description", ""),
    )
    new.created(secret["ARN"])


def _table(new: _New) -> None:
    name = new.name("TableName")
    args = {
        k: new.props[k]
        for k in ("AttributeDefinitions", "KeySchema", "BillingMode", "GlobalSecondaryIndexes", "SSESpecification")
        if k in new.props
    }
    if "SSESpecification" in args:
        sse = args["SSESpecification"]
        args["SSESpecification"] = {
            "Enabled": sse.get("SSEEnabled", False),
            "SSEType": sse.get("SSEType", "KMS"),
            "KMSMasterKeyId": sse.get("KMSMasterKeyId"),
        }
    new.client("dynamodb").create_table(TableName=name, **args)
    new.created(name, _arn("dynamodb", f"table/{name}"))


def _topic(new: _New) -> None:
    attributes = {k: str(new.props[k]) for k in ("KmsMasterKeyId", "DisplayName") if k in new.props}
    topic = new.client("sns").create_topic(Name=new.name("TopicName"), Attributes=attributes)
    new.created(topic["TopicArn"])
    new.stack.attributes[(new.logical_id, "TopicName")] = topic["TopicArn"].rsplit(":", 1)[1]


def _subscription(new: _New) -> None:
    props = new.props
    sub = new.client("sns").subscribe(
        TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"]
    )
    new.created(sub["SubscriptionArn"])


def _log_group(new: _New) -> None:
    # The template's own name, as deploys; without one CloudFormation makes up "<stack>-<logical id>-<suffix>".
    name = new.props.get("LogGroupName") or f"{new.stack.name}-{new.logical_id}-{uuid.uuid4().hex[:12].upper()}"
    new.client("logs").create_log_group(logGroupName=name)
    new.created(name, _arn("logs", f"log-group:{name}:*"))


def _layer(new: _New) -> None:
    new.stack.skipped.append(f"{new.logical_id} (layer: its package is importable in the sandbox's environment)")
    new.created(_arn("lambda", f"layer:{new.props.get('LayerName') or new.logical_id}:1"))


def _serverless_function(new: _New) -> None:
    _function(new)
    _schedules(new.logical_id, new.props, new.stack, new.client)


def _serverless_state_machine(new: _New) -> None:
    _state_machine(new.logical_id, new.props, new.stack, new.client)
    for event_name, event in new.props.get("Events", {}).items():
        new.stack.skipped.append(
            f"{new.logical_id}.{event_name} ({event['Type']}: the sandbox starts executions itself)"
        )


# Operations resources: created in moto so their shape is checked by its API; nothing in the sandbox fires them
# (moto emits no Step Functions status events and evaluates no alarms), which the sandbox lists as skipped.


def _events_rule(new: _New) -> None:
    props = new.props
    name = new.name("Name")
    events = new.client("events")
    arn = events.put_rule(
        Name=name,
        EventPattern=json.dumps(props["EventPattern"]),
        State=props.get("State", "ENABLED"),
        Description=props.get("Description", ""),
    )["RuleArn"]
    answer = events.put_targets(Rule=name, Targets=props.get("Targets", []))
    if answer.get("FailedEntryCount"):
        raise TemplateError(f"{new.logical_id}: targets refused: {answer['FailedEntries']}")
    new.created(name, arn)
    new.stack.skipped.append(f"{new.logical_id} (created; moto emits no Step Functions status-change events)")


def _topic_policy(new: _New) -> None:
    policy = json.dumps(new.props["PolicyDocument"])
    for topic in new.props["Topics"]:
        new.client("sns").set_topic_attributes(TopicArn=topic, AttributeName="Policy", AttributeValue=policy)
    new.created(",".join(new.props["Topics"]))


def _alarm(new: _New) -> None:
    name = new.name("AlarmName")
    settings = {k: v for k, v in new.props.items() if k != "AlarmName"}
    new.client("cloudwatch").put_metric_alarm(AlarmName=name, **settings)
    new.created(name, _arn("cloudwatch", f"alarm:{name}"))
    new.stack.skipped.append(f"{new.logical_id} (created; moto does not evaluate alarms)")


def _dashboard(new: _New) -> None:
    name = new.name("DashboardName")
    json.loads(new.props["DashboardBody"])  # CloudWatch refuses a body that is not JSON; so does the sandbox
    new.client("cloudwatch").put_dashboard(DashboardName=name, DashboardBody=new.props["DashboardBody"])
    new.created(name)


# Every resource type the sandbox creates, in the order it creates them (what a resource refers to comes first).
CREATORS: dict[str, Callable[[_New], None]] = {
    "AWS::KMS::Key": _kms_key,
    "AWS::KMS::Alias": _kms_alias,
    "AWS::S3::Bucket": _bucket,
    "AWS::S3::BucketPolicy": _bucket_policy,
    "AWS::SecretsManager::Secret": _secret,
    "AWS::DynamoDB::Table": _table,
    "AWS::SNS::Topic": _topic,
    "AWS::SNS::Subscription": _subscription,
    "AWS::Logs::LogGroup": _log_group,
    "AWS::Serverless::LayerVersion": _layer,
    "AWS::Serverless::Function": _serverless_function,
    "AWS::Serverless::StateMachine": _serverless_state_machine,
    "AWS::Events::Rule": _events_rule,
    "AWS::SNS::TopicPolicy": _topic_policy,
    "AWS::CloudWatch::Alarm": _alarm,
    "AWS::CloudWatch::Dashboard": _dashboard,
}


def _create(
    resource_type: str,
    logical_id: str,
    props: dict[str, Any],
    stack: Stack,
    client: Callable[[str], Any],
    globals_function: dict[str, Any],
    resolver: Resolver,
) -> None:
    """Create one resource of the template with its type's creator."""
    CREATORS[resource_type](_New(logical_id, props, stack, client, globals_function, resolver))


def _function(new: _New) -> None:
    from abrecon_sandbox.aws.lambdas import FunctionSpec

    logical_id, props, stack = new.logical_id, new.props, new.stack
    globals_function = new.resolver.resolve(new.globals_function)
    merged = {**globals_function, **props}
    variables = {
        **globals_function.get("Environment", {}).get("Variables", {}),
        **props.get("Environment", {}).get("Variables", {}),
    }
    name = new.name("FunctionName")
    arn = _arn("lambda", f"function:{name}")
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


def _state_machine(logical_id: str, props: dict[str, Any], stack: Stack, client: Any) -> None:
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
