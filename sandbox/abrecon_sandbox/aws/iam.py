"""IAM in the sandbox: every request a Lambda worker or the state machine makes, evaluated as AWS evaluates it.

Who calls: each function's workers sign with an access key of their own that names the function's role; moto's
ASL interpreter (the state machine's Lambda invokes, the Map's ItemReader, its DynamoDB and SNS tasks) builds its
boto3 clients in moto.stepfunctions.parser.asl.utils.boto_client, which gets the state machine role's key here.
Any other key (the sandbox's own stack creation, audit, tests, the CLI) is the account's administrator, unchecked.

What is evaluated: the roles as they deploy. template.yaml is expanded by aws-sam-translator (SAM's generated
roles, the managed policies SAM attaches: AWSLambdaBasicExecutionRole, AWSXrayWriteOnlyAccess for Tracing: Active,
and the inline Policies), its intrinsics resolved against the physical ids of the created stack. The managed
policies' documents come from moto's bundled copy of AWS's managed policies (no network). The resource policies
are the template's bucket policy, key policy and topic policy.

How: statements are matched by moto's own IAM evaluator (moto.iam.access_control.IAMPolicyStatement: Action,
NotAction, Resource, wildcards). Where it falls short this module extends it narrowly, and says so:
  * conditions: moto knows only StringEquals, ignores an operator it does not know, and treats a key missing from
    the request as matching; an Allow whose condition fails comes back DENIED where AWS finds it not applicable.
    Conditions are evaluated here instead (the operators below, with AWS's missing-key rules); a policy using any
    other operator is refused when the sandbox starts, so nothing is silently ignored.
  * principals: moto matches only Principal "*" or an AWS principal string; here AWS, Service and the account's
    root (which delegates to the account's identity policies) are told apart.
  * action names are case-insensitive in IAM; moto's match is not, so both sides are lower-cased.
The decision follows AWS's logic for a principal and a resource of one account: an explicit Deny in any
applicable policy wins; otherwise the identity policies or the resource policy must allow; for KMS the key policy
must allow, either naming the role or delegating to IAM through the account root (then the identity policy must
allow too). Implicit KMS use is a second request on the caller's behalf: an S3 PutObject under SSE-KMS needs
kms:GenerateDataKey and a GetObject kms:Decrypt on the object's key; Secrets Manager's GetSecretValue of a secret
under a customer key needs kms:Decrypt; SNS Publish to an encrypted topic kms:GenerateDataKey and kms:Decrypt;
DynamoDB decrypts a customer-key table's key in the caller's context (kms:Decrypt); Lambda decrypts a function's
environment with the function's own role (kms:Decrypt on KmsKeyArn) before the handler runs.

TLS: moto is also served over TLS on loopback with a certificate made at start, and the workers and the state
machine use that endpoint (AWS_CA_BUNDLE), so aws:SecureTransport is what the transport really was. The plain
HTTP endpoint stays for the administrator; a role's request over it is evaluated with aws:SecureTransport false.

Denials are answered as each AWS service answers them (status, error code, message) and recorded.
"""

from __future__ import annotations

import datetime
import functools
import io
import ipaddress
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import boto3
from moto.iam.access_control import IAMPolicyStatement, PermissionResult
from moto.iam.aws_managed_policies import aws_managed_policies_data
from werkzeug.wsgi import get_input_stream

from abrecon_sandbox.aws.stack import ACCOUNT_ID, REGION, Resolver, Stack, TemplateError, load_template

# moto's ASL interpreter signs with this key (boto_client_for); it is the state machine's when not replaced.
MOTO_INTERPRETER_ACCESS_KEY = "ak"
ACCOUNT_ROOT = f"arn:aws:iam::{ACCOUNT_ID}:root"
CREDENTIAL = re.compile(r"Credential=(?P<key>[^/]+)/[^/]+/[^/]+/(?P<service>[^/]+)/aws4_request")
S3_OBJECT_PATH = re.compile(r"^/(?P<bucket>[^/]+)(?:/(?P<key>.*))?$")
INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")
MAX_RECORDED = 20

# IAM's service prefix where it differs from the signing name of the request's credential scope.
IAM_PREFIX = {"monitoring": "cloudwatch"}
# Condition operators evaluated here; each may carry IfExists. Negated ones are true when the key is missing.
_POSITIVE = {"StringEquals", "StringLike", "ArnEquals", "ArnLike", "Bool"}
_NEGATED = {"StringNotEquals": "StringEquals", "StringNotLike": "StringLike", "ArnNotEquals": "ArnEquals"}
_NEGATED["ArnNotLike"] = "ArnLike"


class PolicyError(TemplateError):
    """A policy uses something this evaluator does not evaluate (it refuses rather than ignores)."""


@dataclass(frozen=True)
class NamedPolicy:
    """A policy document and the name a denial is reported under."""

    name: str
    document: dict[str, Any]

    def statements(self) -> list[dict[str, Any]]:
        """The document's statements as a list."""
        statements = self.document.get("Statement", [])
        return list(statements) if isinstance(statements, list) else [statements]


@dataclass(frozen=True)
class Principal:
    """A role as its caller's requests present it (Lambda's session name is the function's name)."""

    caller: str  # the function's or state machine's logical id
    role_arn: str
    session_arn: str
    policies: tuple[NamedPolicy, ...]


@dataclass(frozen=True)
class Call:
    """One authorization question: may the principal do action on resource, with these condition keys."""

    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """The answer, and which policy (or absence of one) decided it, in AWS's words."""

    allowed: bool
    policy: str
    reason: str


@dataclass(frozen=True)
class Denial:
    """A request refused, as the summary reports it."""

    caller: str
    role: str
    action: str
    resource: str
    policy: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        """The summary's shape."""
        return {
            "caller": self.caller,
            "role": self.role,
            "action": self.action,
            "resource": self.resource,
            "policy": self.policy,
            "reason": self.reason,
        }


# --- conditions ------------------------------------------------------------------------------------------------


def _wildcard(pattern: str, value: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


def _matches(operator: str, expected: str, actual: str) -> bool:
    if operator == "StringEquals":
        return expected == actual
    if operator == "Bool":
        return expected.lower() == actual.lower()
    if operator == "ArnEquals":  # ArnEquals and ArnLike both take wildcards, segment by segment
        return _wildcard(expected, actual) and expected.count(":") == actual.count(":")
    return _wildcard(expected, actual)  # StringLike, ArnLike


def check_condition_operators(policy: NamedPolicy) -> None:
    """Refuse a policy whose conditions use an operator this module does not evaluate."""
    for statement in policy.statements():
        for key in ("NotResource", "NotPrincipal"):
            if key in statement:
                raise PolicyError(f"{policy.name}: {key} is not evaluated by the sandbox (abrecon_sandbox.aws.iam)")
        for operator in statement.get("Condition", {}):
            base = operator.removesuffix("IfExists")
            if base not in _POSITIVE and base not in _NEGATED and base != "Null":
                raise PolicyError(f"{policy.name}: condition operator {operator} is not evaluated by the sandbox")


def conditions_hold(conditions: Mapping[str, Mapping[str, Any]], context: Mapping[str, str]) -> bool:
    """AWS's rules: every operator and every key must hold; any one of a key's values may match; a missing key
    fails a positive operator, passes a negated one, and passes anything ending IfExists."""
    for operator, keys in conditions.items():
        if_exists = operator.endswith("IfExists")
        base = operator.removesuffix("IfExists")
        for key, expected in keys.items():
            values = [str(v) for v in (expected if isinstance(expected, list) else [expected])]
            actual = context.get(key.lower())
            if base == "Null":
                if any((actual is None) != (v.lower() == "true") for v in values):
                    return False
                continue
            if actual is None:
                if if_exists or base in _NEGATED:
                    continue
                return False
            positive = _NEGATED.get(base, base)
            hit = any(_matches(positive, v, actual) for v in values)
            if hit == (base in _NEGATED):
                return False
    return True


# --- statements and decisions ----------------------------------------------------------------------------------


def _lower(value: Any) -> Any:
    return [v.lower() for v in value] if isinstance(value, list) else str(value).lower()


def _action_and_resource_match(statement: Mapping[str, Any], call: Call) -> bool:
    """moto's own matching of Action/NotAction and Resource, with action names lower-cased (IAM ignores case)."""
    probe: dict[str, Any] = {"Effect": "Allow", "Resource": statement.get("Resource", "*")}
    if "NotAction" in statement:
        probe["NotAction"] = _lower(statement["NotAction"])
    else:
        probe["Action"] = _lower(statement.get("Action", []))
    return IAMPolicyStatement(probe).is_action_permitted(call.action.lower(), call.resource) == (
        PermissionResult.PERMITTED
    )


def _principal_match(statement: Mapping[str, Any], principal: Principal) -> str | None:
    """'direct' (names the role, or anyone), 'account' (the account root: delegates to IAM), or None."""
    named = statement.get("Principal")
    if named == "*":
        return "direct"
    if not isinstance(named, dict):
        return None
    aws = named.get("AWS", [])
    aws = aws if isinstance(aws, list) else [aws]
    if "*" in aws or principal.role_arn in aws or principal.session_arn in aws:
        return "direct"
    if ACCOUNT_ROOT in aws or ACCOUNT_ID in aws:
        return "account"
    return None  # a Service principal: the AWS service itself, never one of the sandbox's callers


def _applicable(
    policy: NamedPolicy, call: Call, principal: Principal | None = None
) -> Iterator[tuple[dict[str, Any], str, str]]:
    """(statement, how it names the principal, its label) for each statement of policy that applies to call. An
    identity policy's statements apply to their role ('identity'); a resource policy's (principal given) only where
    their Principal names the caller ('direct' or 'account', as _principal_match says)."""
    for statement in policy.statements():
        how = "identity" if principal is None else _principal_match(statement, principal)
        if how is None or not _action_and_resource_match(statement, call):
            continue
        if not conditions_hold(statement.get("Condition", {}), call.context):
            continue
        yield statement, how, f"{policy.name}" + (f" ({statement['Sid']})" if "Sid" in statement else "")


def _no_identity_allow(call: Call) -> Decision:
    return Decision(False, "identity policies", f"because no identity-based policy allows the {call.action} action")


def decide(principal: Principal, call: Call, resource_policy: NamedPolicy | None, *, key_policy: bool) -> Decision:
    """AWS's evaluation for one account: explicit Deny wins; identity OR resource policy allows (for a KMS key:
    the key policy must allow, directly or by delegating to IAM through the account root)."""
    identity_allow: str | None = None
    for policy in principal.policies:
        for statement, _, label in _applicable(policy, call):
            if statement.get("Effect") == "Deny":
                return Decision(False, label, "with an explicit deny in an identity-based policy")
            identity_allow = identity_allow or label
    resource_allows: dict[str, str] = {}  # 'direct' / 'account' -> the first statement allowing so
    if resource_policy is not None:
        for statement, how, label in _applicable(resource_policy, call, principal):
            if statement.get("Effect") == "Deny":
                return Decision(False, label, "with an explicit deny in a resource-based policy")
            resource_allows.setdefault(how, label)
    direct = resource_allows.get("direct")
    if key_policy:
        return _key_policy_decision(call, resource_policy, identity_allow, direct, resource_allows.get("account"))
    if identity_allow or direct:
        return Decision(True, identity_allow or direct or "", "allowed")
    return _no_identity_allow(call)


def _key_policy_decision(
    call: Call, key_policy: NamedPolicy | None, identity_allow: str | None, direct: str | None, delegated: str | None
) -> Decision:
    """KMS's rule: the key policy must allow, naming the role, or delegate to IAM, whose policies then must allow."""
    if direct:
        return Decision(True, direct, "the key policy allows it")
    if delegated and identity_allow:
        return Decision(True, identity_allow, f"{delegated} delegates to IAM, which allows it")
    if not delegated:
        name = key_policy.name if key_policy else "the key policy"
        return Decision(False, name, f"because no resource-based policy allows the {call.action} action")
    return _no_identity_allow(call)


# --- the stack's policies ------------------------------------------------------------------------------------


@functools.cache
def _managed_policies() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(aws_managed_policies_data)
    return data


def managed_policy_arns() -> dict[str, str]:
    """Managed policy name -> ARN, for the translator (SAM looks them up by name), from moto's bundled copy."""
    data = _managed_policies()
    return {name: f"arn:aws:iam::aws:policy{body.get('Path', '/')}{name}" for name, body in data.items()}


def _managed_policy(arn: str) -> NamedPolicy:
    data = _managed_policies()
    name = arn.rsplit("/", 1)[1]
    if name not in data:
        raise PolicyError(f"managed policy {arn} is not in moto's copy of AWS's managed policies")
    return NamedPolicy(name, data[name]["Document"])


def expand_template(template_path: Path, stack_name: str, parameters: Mapping[str, str]) -> dict[str, Any]:
    """template.yaml as SAM deploys it (aws-sam-translator), as plain CloudFormation."""
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    template = json.loads(json.dumps(load_template(template_path)))
    # `sam package` replaces local code paths with S3 locations; the roles do not depend on them.
    for resource in template.get("Resources", {}).values():
        props = resource.get("Properties", {})
        for name in ("CodeUri", "DefinitionUri", "ContentUri"):
            if isinstance(props.get(name), str):
                props[name] = f"s3://sandbox-artifacts/{props[name]}"
    translator = Translator(None, Parser(), boto_session=boto3.Session(region_name=REGION))
    arns = managed_policy_arns()
    expanded: dict[str, Any] = translator.translate(
        template, parameter_values={"AWS::StackName": stack_name, **parameters}, get_managed_policy_map=lambda: arns
    )
    return expanded


def _logical_id(value: Any) -> str:
    """The logical id a Role/RoleArn property points at (Fn::GetAtt [Role, Arn])."""
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        return str(target[0] if isinstance(target, list) else target.split(".", 1)[0])
    raise PolicyError(f"cannot tell which role {value!r} is")


@dataclass
class Enforcer:
    """The stack's roles, resource policies and keys; evaluates requests and keeps the denials."""

    principals: dict[str, Principal]  # access key id -> principal
    resource_policies: dict[str, NamedPolicy]  # bucket / key / topic ARN -> its policy
    encrypted_by: dict[str, str]  # secret / table / topic / bucket / function ARN -> KMS key ARN
    keys: dict[str, str]  # key id, ARN or alias name -> key ARN
    secrets: dict[str, str]  # secret name -> ARN
    functions: dict[str, str]  # function name -> ARN
    function_roles: dict[str, Principal]  # function ARN -> its role
    denials: list[Denial] = field(default_factory=list)
    denied: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def key_for(self, caller_logical_id: str) -> str:
        """The access key id the caller's requests are signed with."""
        for key, principal in self.principals.items():
            if principal.caller == caller_logical_id and key != MOTO_INTERPRETER_ACCESS_KEY:
                return key
        raise KeyError(caller_logical_id)

    def summary(self) -> dict[str, Any]:
        """accessDenied and the first calls refused, for the sandbox's summary."""
        with self._lock:
            return {"accessDenied": self.denied, "accessDeniedCalls": [d.as_dict() for d in self.denials]}

    def evaluate(self, principal: Principal, call: Call) -> Decision:
        """Evaluate one call of principal's, with the resource's policy (aws:PrincipalArn: the role's ARN)."""
        call = Call(call.action, call.resource, {"aws:principalarn": principal.role_arn, **call.context})
        resource_policy = self._resource_policy(call.resource)
        is_key = call.action.lower().startswith("kms:")
        return decide(principal, call, resource_policy, key_policy=is_key)

    def _resource_policy(self, resource: str) -> NamedPolicy | None:
        if resource in self.resource_policies:
            return self.resource_policies[resource]
        if resource.startswith("arn:aws:s3:::"):
            return self.resource_policies.get(resource.split("/", 1)[0])
        return None

    def record(self, principal: Principal, call: Call, decision: Decision) -> None:
        """Count a denial; keep the first MAX_RECORDED."""
        with self._lock:
            self.denied += 1
            if len(self.denials) < MAX_RECORDED:
                self.denials.append(
                    Denial(
                        principal.caller,
                        principal.role_arn,
                        call.action,
                        call.resource,
                        decision.policy,
                        decision.reason,
                    )
                )


@dataclass
class _Gathered:
    """What build_enforcer reads from the expanded template, resource by resource."""

    stack: Stack
    resolver: Resolver
    resource_policies: dict[str, NamedPolicy] = field(default_factory=dict)
    encrypted_by: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)

    def key_arn(self, key: str) -> str:
        """A key id, ARN or alias as the key's ARN (itself when it is none of the stack's)."""
        return self.keys.get(key, key)


def build_enforcer(template_path: Path, stack: Stack) -> Enforcer:
    """The stack's roles (as SAM expands them) and resource policies, resolved against what was created."""
    expanded = expand_template(template_path, stack.name, stack.parameters)
    resolver = Resolver(stack, expanded.get("Conditions", {}), expanded.get("Mappings", {}))
    resources: dict[str, Any] = expanded["Resources"]
    live = {
        logical_id: resource
        for logical_id, resource in resources.items()
        if resource.get("Condition") is None or resolver.condition(resource["Condition"])
    }
    gathered = _Gathered(stack, resolver)
    principals, function_roles = _principals(resources, _roles(live, resolver), gathered)
    # Keys first: the other resources name their key by id, ARN or alias.
    for readers in (_KEY_READERS, _RESOURCE_READERS):
        for logical_id, resource in live.items():
            reader = readers.get(resource["Type"])
            if reader is not None:
                reader(gathered, logical_id, resource.get("Properties", {}))
    for policy in gathered.resource_policies.values():
        check_condition_operators(policy)
    return Enforcer(
        principals=principals,
        resource_policies=gathered.resource_policies,
        encrypted_by=gathered.encrypted_by,
        keys=gathered.keys,
        secrets=gathered.secrets,
        functions={spec.name: spec.arn for spec in stack.functions.values()},
        function_roles=function_roles,
    )


def _roles(live: dict[str, Any], resolver: Resolver) -> dict[str, tuple[NamedPolicy, ...]]:
    """Each role's managed and inline policies, by the role's logical id."""
    roles: dict[str, tuple[NamedPolicy, ...]] = {}
    for logical_id, resource in live.items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        props = resource["Properties"]
        policies = [_managed_policy(str(resolver.resolve(arn))) for arn in props.get("ManagedPolicyArns", [])]
        for inline in props.get("Policies", []):
            policies.append(
                NamedPolicy(f"{logical_id}/{inline['PolicyName']}", resolver.resolve(inline["PolicyDocument"]))
            )
        for policy in policies:
            check_condition_operators(policy)
        roles[logical_id] = tuple(policies)
    return roles


def _principals(
    resources: dict[str, Any], roles: dict[str, tuple[NamedPolicy, ...]], gathered: _Gathered
) -> tuple[dict[str, Principal], dict[str, Principal]]:
    """The functions' and the state machine's principals by access key id, and the functions' by ARN; a
    function's environment key goes into gathered.encrypted_by."""
    stack = gathered.stack

    def principal(caller: str, role_logical_id: str, session: str) -> Principal:
        role_name = f"{stack.name}-{role_logical_id}"[:64]
        return Principal(
            caller=caller,
            role_arn=f"arn:aws:iam::{ACCOUNT_ID}:role/{role_name}",
            session_arn=f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{role_name}/{session}",
            policies=roles[role_logical_id],
        )

    principals: dict[str, Principal] = {}
    function_roles: dict[str, Principal] = {}
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::Lambda::Function" and logical_id in stack.functions:
            spec = stack.functions[logical_id]
            who = principal(logical_id, _logical_id(resource["Properties"]["Role"]), spec.name)
            principals[f"ASIA{uuid.uuid5(uuid.NAMESPACE_URL, spec.arn).hex[:16].upper()}"] = who
            function_roles[spec.arn] = who
            if "KmsKeyArn" in resource["Properties"]:
                gathered.encrypted_by[spec.arn] = str(gathered.resolver.resolve(resource["Properties"]["KmsKeyArn"]))
        elif resource["Type"] == "AWS::StepFunctions::StateMachine":
            who = principal(logical_id, _logical_id(resource["Properties"]["RoleArn"]), "states-execution")
            principals[f"ASIA{uuid.uuid5(uuid.NAMESPACE_URL, logical_id).hex[:16].upper()}"] = who
            principals[MOTO_INTERPRETER_ACCESS_KEY] = who
    return principals, function_roles


def _read_key(gathered: _Gathered, logical_id: str, raw: dict[str, Any]) -> None:
    arn = gathered.stack.output(logical_id, "Arn")
    gathered.keys.update({arn: arn, gathered.stack.output(logical_id): arn})
    policy = NamedPolicy(f"{logical_id} key policy", gathered.resolver.resolve(raw["KeyPolicy"]))
    gathered.resource_policies[arn] = policy


def _read_alias(gathered: _Gathered, logical_id: str, raw: dict[str, Any]) -> None:
    props = gathered.resolver.resolve(raw)
    gathered.keys[props["AliasName"]] = gathered.key_arn(props["TargetKeyId"])


def _read_bucket_policy(gathered: _Gathered, logical_id: str, raw: dict[str, Any]) -> None:
    props = gathered.resolver.resolve(raw)
    policy = NamedPolicy(f"{logical_id} (bucket policy)", props["PolicyDocument"])
    gathered.resource_policies[f"arn:aws:s3:::{props['Bucket']}"] = policy


def _read_topic_policy(gathered: _Gathered, logical_id: str, raw: dict[str, Any]) -> None:
    props = gathered.resolver.resolve(raw)
    for topic in props["Topics"]:
        gathered.resource_policies[topic] = NamedPolicy(f"{logical_id} (topic policy)", props["PolicyDocument"])


def _read_bucket(gathered: _Gathered, logical_id: str, raw: dict[str, Any]) -> None:
    props = gathered.resolver.resolve(raw)
    for rule in props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", []):
        default = rule.get("ServerSideEncryptionByDefault", {})
        if default.get("SSEAlgorithm") == "aws:kms" and default.get("KMSMasterKeyID"):
            gathered.encrypted_by[gathered.stack.output(logical_id, "Arn")] = gathered.key_arn(
                default["KMSMasterKeyID"]
            )


def _read_secret(gathered: _Gathered, logical_id: str, raw: dict[str, Any]) -> None:
    props = gathered.resolver.resolve(raw)
    arn = gathered.stack.output(logical_id)
    gathered.secrets[arn.split(":secret:", 1)[-1].rsplit("-", 1)[0]] = arn  # name-XXXXXX: the name
    if props.get("KmsKeyId"):
        gathered.encrypted_by[arn] = gathered.key_arn(props["KmsKeyId"])


def _read_table(gathered: _Gathered, logical_id: str, raw: dict[str, Any]) -> None:
    sse = gathered.resolver.resolve(raw).get("SSESpecification", {})
    if sse.get("SSEEnabled") and sse.get("KMSMasterKeyId"):
        gathered.encrypted_by[gathered.stack.output(logical_id, "Arn")] = gathered.key_arn(sse["KMSMasterKeyId"])


def _read_topic(gathered: _Gathered, logical_id: str, raw: dict[str, Any]) -> None:
    props = gathered.resolver.resolve(raw)
    if props.get("KmsMasterKeyId"):
        gathered.encrypted_by[gathered.stack.output(logical_id)] = gathered.key_arn(props["KmsMasterKeyId"])


# What the enforcer reads from each resource type of the expanded template (SAM's own types are expanded away).
_Reader = Callable[[_Gathered, str, dict[str, Any]], None]
_KEY_READERS: dict[str, _Reader] = {"AWS::KMS::Key": _read_key, "AWS::KMS::Alias": _read_alias}
_RESOURCE_READERS: dict[str, _Reader] = {
    "AWS::S3::BucketPolicy": _read_bucket_policy,
    "AWS::SNS::TopicPolicy": _read_topic_policy,
    "AWS::S3::Bucket": _read_bucket,
    "AWS::SecretsManager::Secret": _read_secret,
    "AWS::DynamoDB::Table": _read_table,
    "AWS::SNS::Topic": _read_topic,
}


# --- requests ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One call a request needs, and how its denial is answered (a service's own words for a KMS refusal)."""

    call: Call
    principal: Principal | None = None  # None: the caller; else e.g. the function's role for its environment
    via_kms: bool = False
    missing_object: bool = False  # s3:ListBucket asked because the object is not there


@dataclass(frozen=True)
class Request:
    """What the router knows of one request."""

    service: str  # the credential scope's signing name: s3, dynamodb, states, monitoring...
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    secure: bool


def _s3_object_exists(bucket: str, key: str) -> tuple[bool, str | None]:
    """Whether moto holds the object, and its KMS key id if it is under SSE-KMS."""
    from moto.s3.models import s3_backends

    try:
        stored = s3_backends[ACCOUNT_ID]["aws"].get_bucket(bucket)
    except Exception:  # noqa: BLE001 - moto raises its own MissingBucket; S3 answers NoSuchBucket itself
        return True, None
    if key not in stored.keys:
        return False, None
    obj = stored.keys[key]
    return True, getattr(obj, "kms_key_id", None) if getattr(obj, "encryption", None) == "aws:kms" else None


def _kms_check(
    action: str, key_arn: str, service: str, context: dict[str, str], principal: Principal | None = None
) -> Check:
    """The KMS call service makes on the caller's behalf (or principal's: Lambda decrypts with the function's role)."""
    kms_context = {**context, "kms:viaservice": f"{service}.{REGION}.amazonaws.com"}
    return Check(Call(action, key_arn, kms_context), principal, via_kms=True)


# The query parameters of ListObjects(V2): a GET or HEAD of a bucket with no others is a listing.
_LIST_QUERY = {
    "list-type", "prefix", "continuation-token", "max-keys", "delimiter", "start-after", "encoding-type", "fetch-owner"
}  # fmt: skip
_OBJECT_QUERY = {"versionId", "x-id", "partNumber", "uploads", "uploadId"}


def _s3_checks(enforcer: Enforcer, request: Request, context: dict[str, str]) -> list[Check]:
    match = S3_OBJECT_PATH.match(request.path)
    if not match:
        return []
    bucket, key = match["bucket"], unquote(match["key"] or "")
    if not key:
        return [Check(Call(_s3_bucket_action(request), f"arn:aws:s3:::{bucket}", context))]
    object_arn = f"arn:aws:s3:::{bucket}/{key}"
    if set(request.query) - _OBJECT_QUERY:
        return [Check(Call("s3:UnknownObjectOperation", object_arn, context))]
    if request.method in ("GET", "HEAD"):
        return _s3_read_checks(enforcer, request, bucket, key, context)
    if request.method in ("PUT", "POST"):
        return _s3_write_checks(enforcer, request, bucket, key, context)
    if request.method == "DELETE":
        return [Check(Call("s3:DeleteObject", object_arn, context))]
    return [Check(Call("s3:UnknownObjectOperation", object_arn, context))]


def _s3_bucket_action(request: Request) -> str:
    if request.method in ("GET", "HEAD") and not set(request.query) - _LIST_QUERY:
        return "s3:ListBucket"
    if request.method == "GET" and "versions" in request.query:
        return "s3:ListBucketVersions"
    if request.method == "GET" and "location" in request.query:
        return "s3:GetBucketLocation"
    return "s3:UnknownBucketOperation"


def _s3_read_checks(
    enforcer: Enforcer, request: Request, bucket: str, key: str, context: dict[str, str]
) -> list[Check]:
    """GetObject or HeadObject: s3:ListBucket too when the object is missing, kms:Decrypt to read one under SSE-KMS."""
    bucket_arn = f"arn:aws:s3:::{bucket}"
    action = "s3:GetObject" if "versionId" not in request.query else "s3:GetObjectVersion"
    checks = [Check(Call(action, f"{bucket_arn}/{key}", context))]
    exists, object_key = _s3_object_exists(bucket, key)
    if not exists:
        checks.append(Check(Call("s3:ListBucket", bucket_arn, context), missing_object=True))
    elif object_key and request.method == "GET":  # HeadObject reads metadata only: no KMS call
        checks.append(_kms_check("kms:Decrypt", enforcer.keys.get(object_key, object_key), "s3", context))
    return checks


def _s3_write_checks(
    enforcer: Enforcer, request: Request, bucket: str, key: str, context: dict[str, str]
) -> list[Check]:
    """PutObject and the multipart calls: kms:GenerateDataKey too when the object is written under SSE-KMS."""
    bucket_arn = f"arn:aws:s3:::{bucket}"
    put_context = dict(context)
    encryption = request.headers.get("x-amz-server-side-encryption")
    key_id = request.headers.get("x-amz-server-side-encryption-aws-kms-key-id")
    if encryption:
        put_context["s3:x-amz-server-side-encryption"] = encryption
    if key_id:
        put_context["s3:x-amz-server-side-encryption-aws-kms-key-id"] = key_id
    checks = [Check(Call("s3:PutObject", f"{bucket_arn}/{key}", put_context))]
    if "uploadId" in request.query and request.method == "POST":
        return checks  # CompleteMultipartUpload: the data key was made by CreateMultipartUpload
    default_key = enforcer.encrypted_by.get(bucket_arn)
    if encryption == "aws:kms" or (encryption is None and default_key):
        key_arn = enforcer.keys.get(key_id or default_key or "", key_id or default_key or "*")
        checks.append(_kms_check("kms:GenerateDataKey", key_arn, "s3", context))
    return checks


def _lambda_checks(enforcer: Enforcer, request: Request, context: dict[str, str]) -> list[Check]:
    """Invoke, and kms:Decrypt by the function's role when its environment is under a customer key."""
    match = INVOKE_PATH.match(request.path)
    if not match or request.method != "POST":
        return [Check(Call("lambda:UnknownOperation", "*", context))]
    name = unquote(match["name"])
    arn = enforcer.functions.get(name, name.split(":$")[0])
    checks = [Check(Call("lambda:InvokeFunction", arn, context))]
    role = enforcer.function_roles.get(arn)
    if role and arn in enforcer.encrypted_by:
        checks.append(_kms_check("kms:Decrypt", enforcer.encrypted_by[arn], "lambda", context, role))
    return checks


def _dynamodb_checks(enforcer: Enforcer, action: str, body: dict[str, Any], context: dict[str, str]) -> list[Check]:
    table_arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{{}}"

    def arn(name: str) -> str:
        return name if name.startswith("arn:") else table_arn.format(name)

    calls: list[Call] = []
    if action in ("BatchGetItem", "BatchWriteItem"):
        calls = [Call(f"dynamodb:{action}", arn(name), context) for name in body.get("RequestItems", {})]
    elif action in ("TransactWriteItems", "TransactGetItems"):
        per_item = {"ConditionCheck": "ConditionCheckItem", "Put": "PutItem", "Update": "UpdateItem",
                    "Delete": "DeleteItem", "Get": "GetItem"}  # fmt: skip
        for item in body.get("TransactItems", []):
            for kind, operation in item.items():
                calls.append(Call(f"dynamodb:{per_item.get(kind, kind)}", arn(operation["TableName"]), context))
    else:
        resource = arn(str(body.get("TableName", "*")))
        if body.get("IndexName"):
            resource = f"{resource}/index/{body['IndexName']}"
        calls = [Call(f"dynamodb:{action}", resource, context)]
    checks = [Check(call) for call in calls]
    for call in calls:
        table = call.resource.split("/index/")[0]
        if table in enforcer.encrypted_by and action != "DescribeTable":
            checks.append(_kms_check("kms:Decrypt", enforcer.encrypted_by[table], "dynamodb", context))
            break
    return checks


def _secretsmanager_checks(
    enforcer: Enforcer, action: str, body: dict[str, Any], context: dict[str, str]
) -> list[Check]:
    secret = str(body.get("SecretId", "*"))
    arn = secret if secret.startswith("arn:") else enforcer.secrets.get(secret, secret)
    checks = [Check(Call(f"secretsmanager:{action}", arn, context))]
    if action == "GetSecretValue" and arn in enforcer.encrypted_by:
        checks.append(_kms_check("kms:Decrypt", enforcer.encrypted_by[arn], "secretsmanager", context))
    return checks


def _kms_checks(enforcer: Enforcer, action: str, body: dict[str, Any], context: dict[str, str]) -> list[Check]:
    key = str(body.get("KeyId", "*"))
    return [Check(Call(f"kms:{action}", enforcer.keys.get(key, key), context))]


def _states_checks(enforcer: Enforcer, action: str, body: dict[str, Any], context: dict[str, str]) -> list[Check]:
    resource = body.get("stateMachineArn") or body.get("executionArn") or body.get("mapRunArn") or "*"
    return [Check(Call(f"states:{action}", str(resource), context))]


def _sns_checks(enforcer: Enforcer, action: str, form: dict[str, Any], context: dict[str, str]) -> list[Check]:
    topic = str(form.get("TopicArn") or form.get("TargetArn") or "*")
    checks = [Check(Call(f"sns:{action}", topic, context))]
    if action == "Publish" and topic in enforcer.encrypted_by:
        key_arn = enforcer.encrypted_by[topic]
        checks += [_kms_check(a, key_arn, "sns", context) for a in ("kms:GenerateDataKey", "kms:Decrypt")]
    return checks


# How each service's requests name their action and resource: by path (S3, Lambda), by a JSON body and an
# X-Amz-Target header, or by a form (the query protocol). A service not listed is checked on its action alone.
_PathChecks = Callable[[Enforcer, Request, dict[str, str]], list[Check]]
_BodyChecks = Callable[[Enforcer, str, dict[str, Any], dict[str, str]], list[Check]]
_PATH_CHECKS: dict[str, _PathChecks] = {"s3": _s3_checks, "lambda": _lambda_checks}
_JSON_CHECKS: dict[str, _BodyChecks] = {
    "dynamodb": _dynamodb_checks,
    "secretsmanager": _secretsmanager_checks,
    "kms": _kms_checks,
    "states": _states_checks,
}
_FORM_CHECKS: dict[str, _BodyChecks] = {"sns": _sns_checks}


def request_checks(enforcer: Enforcer, request: Request) -> list[Check]:
    """The calls one request needs authorized, in the order AWS would refuse them."""
    context = {"aws:securetransport": "true" if request.secure else "false", "aws:principalaccount": ACCOUNT_ID}
    service = request.service
    if service in _PATH_CHECKS:
        return _PATH_CHECKS[service](enforcer, request, context)
    target = request.headers.get("x-amz-target", "")
    if target:  # the JSON protocol: the action in X-Amz-Target, its parameters in the body
        action = target.rsplit(".", 1)[-1]
        params: dict[str, Any] = json.loads(request.body or b"{}")
        checks = _JSON_CHECKS
    else:  # the query protocol: the action and its parameters in the form body and the query string
        params = {k: v[0] for k, v in parse_qs(request.body.decode(errors="replace")).items()} if request.body else {}
        params.update({k: v[0] for k, v in request.query.items()})
        action = params.get("Action", "UnknownOperation")
        checks = _FORM_CHECKS
    if service in checks:
        return checks[service](enforcer, action, params, context)
    return [Check(Call(f"{IAM_PREFIX.get(service, service)}:{action}", "*", context))]


# --- answers --------------------------------------------------------------------------------------------------


def _message(principal: Principal, call: Call, decision: Decision) -> str:
    return (
        f"User: {principal.session_arn} is not authorized to perform: {call.action} on resource: "
        f"{call.resource} {decision.reason}"
    )


Answer = tuple[str, list[tuple[str, str]], bytes]


def denial_answer(request: Request, check: Check, principal: Principal, decision: Decision) -> Answer:
    """The status, headers and body the AWS service answers a refused request with."""
    request_id = uuid.uuid4().hex.upper()[:16]
    message = _message(check.principal or principal, check.call, decision)
    service = request.service
    if service == "s3":
        text = "Access Denied" if check.missing_object else message
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
            f"<Message>{_xml(text)}</Message><RequestId>{request_id}</RequestId><HostId>{request_id}</HostId></Error>"
        ).encode()
        headers = [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)]
        if request.method == "HEAD":  # S3 sends no body with HEAD: the SDK sees only the status (Code "403")
            return "403 Forbidden", [*headers, ("Content-Length", "0")], b""
        return "403 Forbidden", [*headers, ("Content-Length", str(len(body)))], body
    if service == "sns":
        code, status = (
            ("KMSAccessDenied", "400 Bad Request") if check.via_kms else ("AuthorizationError", "403 Forbidden")
        )
        body = (
            '<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>Sender</Type>'
            f"<Code>{code}</Code><Message>{_xml(message)}</Message></Error><RequestId>{request_id}</RequestId>"
            "</ErrorResponse>"
        ).encode()
        return status, [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))], body
    if service == "lambda":
        if check.via_kms:  # Lambda could not decrypt the function's environment with the function's role
            error, status = "KMSAccessDeniedException", "502 Bad Gateway"
            text = (
                "Lambda was unable to decrypt the environment variables because KMS access was denied. "
                "Please check the function's KMS key settings. "
                f"KMS Exception: AccessDeniedException KMS Message: {message}"
            )
        else:
            error, status, text = "AccessDeniedException", "403 Forbidden", message
        body = json.dumps({"Type": "User", "Message": text}).encode()
        headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", error)]
        return status, [*headers, ("Content-Length", str(len(body)))], body
    if service == "dynamodb":
        if check.via_kms:
            payload = {"__type": "com.amazon.coral.validate#ValidationException",
                       "message": f"KMS key access denied error: {message}"}  # fmt: skip
        else:
            payload = {"__type": "com.amazon.coral.service#AccessDeniedException", "Message": message}
        body = json.dumps(payload).encode()
        return (
            "400 Bad Request",
            [("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(body)))],
            body,
        )
    if service == "secretsmanager" and check.via_kms:
        message = "Access to KMS is not allowed"
    body = json.dumps({"__type": "AccessDeniedException", "Message": message}).encode()
    return "400 Bad Request", [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(body)))], body


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- the router's hook ----------------------------------------------------------------------------------------


class IamGate:
    """What the router asks before passing a request on: None to pass it, or AWS's refusal."""

    def __init__(self, enforcer: Enforcer) -> None:
        self.enforcer = enforcer

    def __call__(self, environ: dict[str, Any]) -> Answer | None:
        """Evaluate the request environ describes; reads a JSON or form body and puts it back for moto."""
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        credential = CREDENTIAL.search(authorization)
        if credential is None:
            query_credential = parse_qs(environ.get("QUERY_STRING", "")).get("X-Amz-Credential", [""])[0]
            credential = CREDENTIAL.search(f"Credential={query_credential}")
        if credential is None:
            return None  # unsigned: moto's own API (reset), never a worker's
        principal = self.enforcer.principals.get(credential["key"])
        if principal is None:
            return None  # the administrator
        service = credential["service"]
        body = b""
        if service not in ("s3", "lambda"):  # S3 and Lambda bodies are data, not the request's parameters
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)
        headers = {k[5:].replace("_", "-").lower(): str(v) for k, v in environ.items() if k.startswith("HTTP_")}
        request = Request(
            service=service,
            method=environ.get("REQUEST_METHOD", "GET"),
            path=environ.get("PATH_INFO", ""),
            query=parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True),
            headers=headers,
            body=body,
            secure=environ.get("wsgi.url_scheme") == "https",
        )
        for check in request_checks(self.enforcer, request):
            who = check.principal or principal
            decision = self.enforcer.evaluate(who, check.call)
            if not decision.allowed:
                self.enforcer.record(who, check.call, decision)
                # An upload's body is read before answering, as S3 does: a client still sending it would see the
                # connection drop instead of the refusal.
                get_input_stream(environ).read()
                return denial_answer(request, check, principal, decision)
        return None


# --- TLS on loopback -------------------------------------------------------------------------------------------


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, made now: (certificate, private key) PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())  # cheap handshakes: every worker request opens one
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "abrecon sandbox")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "sandbox-cert.pem", directory / "sandbox-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class _StateMachineBoto3:
    """Stands in for the boto3 module inside moto's ASL interpreter: its clients sign as the state machine's role
    and call the TLS endpoint, as Step Functions calls AWS."""

    def __init__(self, access_key: str, endpoint_url: str, ca_bundle: Path) -> None:
        self._access_key = access_key
        self._endpoint_url = endpoint_url
        self._ca_bundle = str(ca_bundle)

    def client(self, **kwargs: Any) -> Any:
        """boto3.client with the state machine's identity and endpoint."""
        kwargs.update(aws_access_key_id=self._access_key, endpoint_url=self._endpoint_url, verify=self._ca_bundle)
        return boto3.client(**kwargs)


@contextmanager
def state_machine_identity(access_key: str, endpoint_url: str, ca_bundle: Path) -> Iterator[None]:
    """While inside, moto's ASL interpreter calls AWS as the state machine's role over TLS."""
    from moto.stepfunctions.parser.asl.utils import boto_client

    original = getattr(boto_client, "boto3")  # noqa: B009 - the module's own import of boto3, not exported
    setattr(boto_client, "boto3", _StateMachineBoto3(access_key, endpoint_url, ca_bundle))  # noqa: B010
    try:
        yield
    finally:
        setattr(boto_client, "boto3", original)  # noqa: B010


@contextmanager
def moto_bucket_policy_check_off() -> Iterator[None]:
    """moto applies a bucket policy's Deny statements by itself, with their conditions ignored (its
    FakeBucket.get_permission): the template's deny-unless-TLS statement would refuse every object request, the
    administrator's too. While inside, the bucket policy stays applied in moto (GetBucketPolicy shows it) and is
    evaluated by this module only."""
    from moto.s3.models import FakeBucket

    original = FakeBucket.get_permission
    FakeBucket.get_permission = lambda self, action, resource: PermissionResult.NEUTRAL  # type: ignore[method-assign]
    try:
        yield
    finally:
        FakeBucket.get_permission = original  # type: ignore[method-assign]
