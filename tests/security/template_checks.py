"""Security checks over template.yaml and the state machine definitions, as functions that return problems.

Each check takes the template as `abrecon_sandbox.stack.load_template` reads it (and the ASL documents as parsed
JSON) and returns a list of human-readable problems; an empty list means the check holds. test_iam.py runs every
check on the real files, and proves each one fails on a copy broken in the way it guards against.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# --- where AWS requires a wildcard ---------------------------------------------------------------------------------
# (resource logical id, or resource type for what SAM adds to every resource of that type;
#  statement Sid, or "managed:<AWS managed policy>") -> why the wildcard is unavoidable there.
ALLOWED_WILDCARD_RESOURCE: dict[tuple[str, str], str] = {
    ("DocumentKey", "AccountAdministers"): "in a key policy Resource '*' is the key itself",
    ("DocumentKey", "CloudWatchLogsEncryptsTheExecutionLog"): "in a key policy Resource '*' is the key itself",
    ("DocumentKey", "SnsDeliversEncryptedMessages"): "in a key policy Resource '*' is the key itself",
    ("DocumentKey", "AlertsPublishToEncryptedTopics"): "in a key policy Resource '*' is the key itself",
    ("ReconcileStateMachine", "VendedLogDelivery"): (
        "the vended-logs delivery actions (logs:*LogDelivery, *ResourcePolicy, DescribeLogGroups) have no"
        " resource-level permissions: Step Functions logging needs them on '*'"
    ),
    ("AWS::Serverless::Function", "managed:AWSXrayWriteOnlyAccess"): (
        "added by SAM for Tracing: Active; xray:PutTraceSegments/PutTelemetryRecords support only Resource '*'"
    ),
    ("AWS::Serverless::StateMachine", "managed:AWSXrayWriteOnlyAccess"): (
        "added by SAM for Tracing: Enabled; xray:PutTraceSegments/PutTelemetryRecords support only Resource '*'"
    ),
    ("AWS::Serverless::Function", "managed:AWSLambdaBasicExecutionRole"): (
        "added by SAM to every function role it creates (CloudWatch Logs writes on '*'); narrowing it to the"
        " function's own log group would take a hand-written role per function"
    ),
}
ALLOWED_WILDCARD_ACTION: dict[tuple[str, str], str] = {
    ("DocumentKey", "AccountAdministers"): (
        "kms:* for the account root is what lets IAM policies govern the key; KMS refuses a key policy that"
        " would lock the account out of its own key"
    ),
}

SECRET_ENV_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|API_?KEY|PRIVATE_?KEY", re.IGNORECASE)
SECRET_DYNAMIC_REFERENCE = re.compile(r"\{\{resolve:(secretsmanager|ssm-secure):", re.IGNORECASE)
# LWA access/refresh tokens and client secrets (the same shapes abrecon.errors.redact scrubs).
SECRET_VALUE = re.compile(r"Atz[ar]\||amzn1\.oa2-cs\.")
SECRET_ARN = re.compile(r"^arn:[^:]+:secretsmanager:[^:]*:[^:]*:secret:.+")
# Names that must never be a field of state-machine data: execution history keeps every payload in clear text.
# A presigned URL is a bearer credential for its document, so it stays inside the download function too.
SECRET_ASL_WORD = re.compile(
    r"secret|password|passwd|credential|authorization|api[_-]?key|private[_-]?key"
    r"|(?:access|refresh|session|bearer|auth|id)[_-]?token|x-amz-access-token|presigned|url$",
    re.IGNORECASE,
)
SECRET_READING_TASK = re.compile(
    r"^arn:[^:]+:states:::aws-sdk:(secretsmanager|ssm:getParameter|kms:decrypt|sts:)", re.IGNORECASE
)


@dataclass(frozen=True)
class Statement:
    """One IAM policy statement and where it sits."""

    resource: str
    resource_type: str
    where: str
    body: dict[str, Any]
    trust_policy: bool

    @property
    def key(self) -> str:
        """Sid, or the actions when there is none (what the allow-lists are keyed by)."""
        sid = self.body.get("Sid")
        return str(sid) if sid else ",".join(actions(self.body))

    @property
    def allows(self) -> bool:
        return self.body.get("Effect") == "Allow"

    def __str__(self) -> str:
        return f"{self.resource}.{self.where} ({self.key})"


# --- reading the template ------------------------------------------------------------------------------------------


def resources_of(template: dict[str, Any], *types: str) -> dict[str, dict[str, Any]]:
    """Resources of the given types (every resource when none given)."""
    found: dict[str, dict[str, Any]] = template.get("Resources", {})
    return {name: r for name, r in found.items() if not types or r.get("Type") in types}


def policy_statements(template: dict[str, Any]) -> list[Statement]:
    """Every policy statement anywhere in any resource's properties: function and state machine Policies, key
    policies, bucket/topic/queue policies, AWS::IAM::* roles, policies and managed policies."""
    found: list[Statement] = []
    for name, resource in resources_of(template).items():
        for where, document, trust in _policy_documents(resource.get("Properties", {}), "Properties"):
            statements = document["Statement"]
            for index, body in enumerate(statements if isinstance(statements, list) else [statements]):
                if isinstance(body, dict):
                    found.append(Statement(name, resource["Type"], f"{where}.Statement[{index}]", body, trust))
    return found


def _policy_documents(node: Any, where: str, trust: bool = False) -> Iterator[tuple[str, dict[str, Any], bool]]:
    if isinstance(node, dict):
        if "Statement" in node:
            yield where, node, trust
            return
        for key, value in node.items():
            yield from _policy_documents(value, f"{where}.{key}", trust or key == "AssumeRolePolicyDocument")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _policy_documents(value, f"{where}[{index}]", trust)


def managed_policies(template: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(resource, resource type, policy name) for every policy whose statements the template does not show:
    what SAM attaches by itself, managed policy names/ARNs and SAM policy templates in Policies, and
    ManagedPolicyArns of AWS::IAM::Role / User / Group."""
    globals_function = template.get("Globals", {}).get("Function", {})
    found: list[tuple[str, str, str]] = []
    for name, resource in resources_of(template).items():
        kind = resource.get("Type", "")
        props = resource.get("Properties", {})
        found.extend((name, kind, policy) for policy in _attached_by_sam(kind, props, globals_function))
        if kind in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine"):
            found.extend((name, kind, policy) for policy in _named_in_policies(props.get("Policies", [])))
        for arn in props.get("ManagedPolicyArns", []) if kind.startswith("AWS::IAM::") else []:
            found.append((name, kind, _text(arn).rsplit("/", 1)[-1]))
    return found


def _attached_by_sam(kind: str, props: dict[str, Any], globals_function: dict[str, Any]) -> list[str]:
    """The managed policies SAM attaches by itself to the role it generates for a function or state machine."""
    if "Role" in props:
        return []
    if kind == "AWS::Serverless::Function":
        tracing = props.get("Tracing", globals_function.get("Tracing")) == "Active"
        return ["AWSLambdaBasicExecutionRole", *(["AWSXrayWriteOnlyAccess"] if tracing else [])]
    if kind == "AWS::Serverless::StateMachine":
        tracing = props.get("Tracing", {})
        if isinstance(tracing, dict) and tracing.get("Enabled") is True:
            return ["AWSXrayWriteOnlyAccess"]
    return []


def _named_in_policies(policies: Any) -> list[str]:
    """Managed policy names/ARNs and SAM policy templates in a SAM resource's Policies (one or a list)."""
    found: list[str] = []
    for policy in policies if isinstance(policies, list) else [policies]:
        if isinstance(policy, str):
            found.append(policy.rsplit("/", 1)[-1])
        elif isinstance(policy, dict) and "Statement" not in policy:
            found.extend(f"SAM policy template {template_name}" for template_name in policy)
    return found


def actions(body: dict[str, Any]) -> list[str]:
    value = body.get("Action", [])
    return [str(a) for a in (value if isinstance(value, list) else [value])]


def _text(value: Any) -> str:
    """An intrinsic as text: Ref/GetAtt and Fn::Sub's ${Name} as <Name>, pseudo parameters (${AWS::Region}) as X,
    Fn::Join joined; anything else <?>."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((function, arg),) = value.items()
        if function == "Fn::Sub":
            pattern = arg[0] if isinstance(arg, list) else arg
            text = re.sub(r"\$\{AWS::[^}]*\}", "X", str(pattern))
            return re.sub(r"\$\{([^}!][^}]*)\}", r"<\1>", text)
        if function == "Ref":
            return f"<{arg}>"
        if function == "Fn::GetAtt":
            return f"<{arg if isinstance(arg, str) else '.'.join(map(str, arg))}>"
        if function == "Fn::Join" and isinstance(arg, list) and len(arg) == 2:
            return str(arg[0]).join(_text(part) for part in arg[1])
    return "<?>"


def _referenced(value: Any) -> str | None:
    """The logical id a Ref / GetAtt points at, else None."""
    if isinstance(value, dict) and len(value) == 1:
        ((function, arg),) = value.items()
        if function == "Ref":
            return str(arg)
        if function == "Fn::GetAtt":
            return str(arg).split(".", 1)[0] if isinstance(arg, str) else str(arg[0])
    return None


def is_wildcard_resource(value: Any) -> bool:
    """'*', or an ARN whose resource part names no resource at all (``table/*``, ``log-group:*``, ``*``)."""
    text = _text(value)
    if text == "*":
        return True
    parts = text.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn":
        return False
    if "*" in parts[2]:  # service
        return True
    resource = re.sub(r"^[A-Za-z-]+[/:]", "", parts[5])
    return set(resource) <= set("*/:")


def is_wildcard_action(action: str) -> bool:
    return action == "*" or re.fullmatch(r"[A-Za-z0-9-]+:\*", action) is not None


def _allowed(table: dict[tuple[str, str], str], statement: Statement) -> bool:
    return (statement.resource, statement.key) in table or (statement.resource_type, statement.key) in table


def _principal_is_public(body: dict[str, Any]) -> bool:
    principal = body.get("Principal")
    if principal == "*":
        return True
    if isinstance(principal, dict):
        aws = principal.get("AWS")
        return aws == "*" or (isinstance(aws, list) and "*" in aws)
    return False


# --- the checks ----------------------------------------------------------------------------------------------------


def wildcard_action_problems(template: dict[str, Any]) -> list[str]:
    """Allow statements with Action '*' or 'service:*', or NotAction, outside ALLOWED_WILDCARD_ACTION."""
    problems = []
    for statement in policy_statements(template):
        if not statement.allows:
            continue  # a Deny on s3:* is the point of a Deny
        if "NotAction" in statement.body:
            problems.append(f"{statement}: Allow with NotAction grants everything else")
        wild = [a for a in actions(statement.body) if is_wildcard_action(a)]
        if wild and not _allowed(ALLOWED_WILDCARD_ACTION, statement):
            problems.append(f"{statement}: wildcard action {wild}")
    return problems


def wildcard_resource_problems(template: dict[str, Any]) -> list[str]:
    """Allow statements on Resource '*' (or an ARN naming no resource), or NotResource, outside
    ALLOWED_WILDCARD_RESOURCE; and every policy the template does not show (managed, SAM-added) unless allowed."""
    problems = []
    for statement in policy_statements(template):
        if not statement.allows or statement.trust_policy:
            continue
        if "NotResource" in statement.body:
            problems.append(f"{statement}: Allow with NotResource grants everything else")
        value = statement.body.get("Resource")
        if value is None and "NotResource" not in statement.body:
            problems.append(f"{statement}: no Resource")
            continue
        wild = [_text(r) for r in (value if isinstance(value, list) else [value]) if is_wildcard_resource(r)]
        if wild and not _allowed(ALLOWED_WILDCARD_RESOURCE, statement):
            problems.append(f"{statement}: wildcard resource {wild}")
    for name, kind, policy in managed_policies(template):
        key = f"managed:{policy}"
        if (name, key) not in ALLOWED_WILDCARD_RESOURCE and (kind, key) not in ALLOWED_WILDCARD_RESOURCE:
            problems.append(f"{name}: policy {policy!r} is not written out in the template; list its statements")
    return problems


def public_principal_problems(template: dict[str, Any]) -> list[str]:
    """Allow statements whose principal is everyone."""
    return [
        f"{s}: Allow to Principal '*'" for s in policy_statements(template) if s.allows and _principal_is_public(s.body)
    ]


def stale_allowlist_entries(template: dict[str, Any]) -> list[str]:
    """Allow-list entries nothing in the template uses any more (remove them, they would hide a future grant)."""
    used: set[tuple[str, str]] = set()
    for statement in policy_statements(template):
        used |= {(statement.resource, statement.key), (statement.resource_type, statement.key)}
    for name, kind, policy in managed_policies(template):
        used |= {(name, f"managed:{policy}"), (kind, f"managed:{policy}")}
    entries = list(ALLOWED_WILDCARD_RESOURCE) + list(ALLOWED_WILDCARD_ACTION)
    return [f"allow-list entry {entry} matches nothing in the template" for entry in entries if entry not in used]


def _stack_keys(template: dict[str, Any]) -> set[str]:
    return set(resources_of(template, "AWS::KMS::Key"))


def key_rotation_problems(template: dict[str, Any]) -> list[str]:
    """Every KMS key rotates."""
    keys = resources_of(template, "AWS::KMS::Key")
    problems = [
        f"{name}: EnableKeyRotation is not true"
        for name, k in keys.items()
        if k.get("Properties", {}).get("EnableKeyRotation") is not True
    ]
    return problems or ([] if keys else ["the template has no KMS key"])


def stack_key_problems(template: dict[str, Any]) -> list[str]:
    """The secret, the topic, the table, the bucket's default encryption, log groups and the functions'
    environment use the stack's own KMS key, never an AWS managed key or none."""
    keys = _stack_keys(template)
    problems, key_settings = _encryption_settings(template)
    for name, what, value in key_settings:
        if _referenced(value) not in keys:
            problems.append(f"{name}: {what} is {_text(value) if value is not None else 'missing'}, not the stack key")
    return problems


def _encryption_settings(template: dict[str, Any]) -> tuple[list[str], list[tuple[str, str, Any]]]:
    """(problems with the kind of encryption, every (resource, property, value) that must name the stack key)."""
    problems: list[str] = []
    settings: list[tuple[str, str, Any]] = []
    for name, r in resources_of(template, "AWS::SecretsManager::Secret").items():
        settings.append((name, "KmsKeyId", r["Properties"].get("KmsKeyId")))
    for name, r in resources_of(template, "AWS::SNS::Topic").items():
        settings.append((name, "KmsMasterKeyId", r["Properties"].get("KmsMasterKeyId")))
    for name, r in resources_of(template, "AWS::DynamoDB::Table").items():
        sse = r["Properties"].get("SSESpecification", {})
        if sse.get("SSEEnabled") is not True or sse.get("SSEType", "KMS") != "KMS":
            problems.append(f"{name}: SSESpecification is not SSE-KMS")
        settings.append((name, "SSESpecification.KMSMasterKeyId", sse.get("KMSMasterKeyId")))
    for name, r in resources_of(template, "AWS::Logs::LogGroup").items():
        settings.append((name, "KmsKeyId", r.get("Properties", {}).get("KmsKeyId")))
    for name, r in resources_of(template, "AWS::S3::Bucket").items():
        rules = r["Properties"].get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
        for default in [rule.get("ServerSideEncryptionByDefault", {}) for rule in rules] or [{}]:
            if default.get("SSEAlgorithm") != "aws:kms":
                problems.append(f"{name}: default encryption is not aws:kms")
            settings.append((name, "KMSMasterKeyID", default.get("KMSMasterKeyID")))
    globals_function = template.get("Globals", {}).get("Function", {})
    for name, r in resources_of(template, "AWS::Serverless::Function", "AWS::Lambda::Function").items():
        key = r.get("Properties", {}).get("KmsKeyArn", globals_function.get("KmsKeyArn"))
        settings.append((name, "KmsKeyArn", key))
    return problems, settings


def bucket_policy_problems(template: dict[str, Any]) -> list[str]:
    """Every bucket has a policy that denies plain HTTP on the bucket and its objects, and denies an upload that
    does not name the bucket's own KMS key."""
    policies = resources_of(template, "AWS::S3::BucketPolicy")
    problems = []
    for bucket, resource in resources_of(template, "AWS::S3::Bucket").items():
        statements = [
            s
            for p in policies.values()
            if _referenced(p["Properties"].get("Bucket")) == bucket
            for s in p["Properties"]["PolicyDocument"]["Statement"]
        ]
        denies = [s for s in statements if s.get("Effect") == "Deny" and _principal_is_public(s)]

        def covers(s: dict[str, Any], suffix: str, bucket: str = bucket) -> bool:
            targets = s.get("Resource", [])
            texts = {_text(t) for t in (targets if isinstance(targets, list) else [targets])}
            return f"<{bucket}.Arn>{suffix}" in texts or "*" in texts

        def denies_all(s: dict[str, Any]) -> bool:
            return any(a in ("s3:*", "*") for a in actions(s))

        def denies_put(s: dict[str, Any]) -> bool:
            return any(a in ("s3:*", "*", "s3:PutObject") for a in actions(s))

        tls = [
            s
            for s in denies
            if denies_all(s)
            and covers(s, "")
            and covers(s, "/*")
            and str(s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")).lower() == "false"
        ]
        if not tls:
            problems.append(f"{bucket}: no Deny of every s3 action without TLS on the bucket and its objects")
        rules = resource["Properties"].get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [{}])
        bucket_key = _referenced(rules[0].get("ServerSideEncryptionByDefault", {}).get("KMSMasterKeyID"))
        header = "s3:x-amz-server-side-encryption-aws-kms-key-id"
        key_denies = [
            s
            for s in denies
            if denies_put(s)
            and covers(s, "/*")
            and bucket_key is not None
            and _referenced(s.get("Condition", {}).get("StringNotEquals", {}).get(header)) == bucket_key
        ]
        if not key_denies:
            problems.append(f"{bucket}: no Deny of s3:PutObject whose {header} is not the bucket's key")
    return problems


def environment_secret_problems(template: dict[str, Any]) -> list[str]:
    """No function environment variable holds a secret value: names like *SECRET*/*TOKEN*/*PASSWORD* may only
    reference a secret (Ref/GetAtt of a secret resource, or a secret ARN); no variable resolves a secret at deploy
    time ({{resolve:secretsmanager:..}}), takes a NoEcho parameter, or carries an LWA token/client secret."""
    parameters = template.get("Parameters", {})
    secrets = set(resources_of(template, "AWS::SecretsManager::Secret"))
    globals_env = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    problems = []
    for name, r in resources_of(template, "AWS::Serverless::Function", "AWS::Lambda::Function").items():
        own = r.get("Properties", {}).get("Environment", {}).get("Variables", {})
        for var, value in {**globals_env, **own}.items():
            where = f"{name}: environment variable {var}"
            text = json.dumps(value, default=str)
            target = _referenced(value)
            if SECRET_DYNAMIC_REFERENCE.search(text):
                problems.append(f"{where} resolves a secret value into the function configuration")
            elif SECRET_VALUE.search(text):
                problems.append(f"{where} holds what looks like an LWA token or client secret")
            elif target in parameters and str(parameters[target].get("NoEcho", "false")).lower() == "true":
                problems.append(f"{where} takes the NoEcho parameter {target}")
            elif SECRET_ENV_NAME.search(var) and not (target in secrets or SECRET_ARN.match(_text(value))):
                problems.append(f"{where} must reference a secret (its id or ARN), not hold a value: {_text(value)}")
    return problems


def load_asl(root: Path, template: dict[str, Any]) -> dict[str, Any]:
    """Every state machine definition: the statemachine/*.asl.json files and any inline Definition."""
    documents: dict[str, Any] = {
        str(path.relative_to(root)): json.loads(path.read_text())
        for path in sorted(root.glob("statemachine/*.asl.json"))
    }
    for name, r in resources_of(template, "AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine").items():
        inline = r.get("Properties", {}).get("Definition")
        if isinstance(inline, dict):
            documents[f"{name}.Definition"] = inline
    return documents


def state_machine_secret_problems(documents: dict[str, Any], template: dict[str, Any]) -> list[str]:
    """No state reads a secret (an aws-sdk task on Secrets Manager, SSM parameters, KMS Decrypt, STS) and no field
    name or path in any payload, selector, output or variable names secret material or a presigned URL: Step
    Functions keeps every state's input and output in the execution history. Comments are free text and skipped.
    Definition substitutions must not resolve secrets into the definition either."""
    problems = []
    for source, document in documents.items():
        for where, key, value in _walk_asl(document, ""):
            problems.extend(f"{source}{where}: {problem}" for problem in _asl_field_problems(key, value))
    for name, r in resources_of(template, "AWS::Serverless::StateMachine").items():
        for var, value in r.get("Properties", {}).get("DefinitionSubstitutions", {}).items():
            text = json.dumps(value, default=str)
            if SECRET_DYNAMIC_REFERENCE.search(text) or SECRET_VALUE.search(text):
                problems.append(f"{name}: DefinitionSubstitutions.{var} puts a secret value into the definition")
    return problems


def _asl_field_problems(key: str, value: Any) -> list[str]:
    """What one field of a state machine definition gives away: a secret-reading task, a name or a path naming
    secret material, a literal secret."""
    problems = []
    if key == "Resource" and isinstance(value, str) and SECRET_READING_TASK.match(value):
        problems.append(f"task {value} would put secret material into the state data")
    if SECRET_ASL_WORD.search(key.removesuffix(".$")):
        problems.append(f"field {key!r} names secret material")
    if isinstance(value, str) and (key.endswith(".$") or value.startswith("$")):
        step = next((step for step in re.findall(r"[A-Za-z_][\w-]*", value) if SECRET_ASL_WORD.search(step)), None)
        if step is not None:
            problems.append(f"path {value!r} reads secret material ({step})")
    if isinstance(value, str) and (SECRET_VALUE.search(value) or SECRET_DYNAMIC_REFERENCE.search(value)):
        problems.append("literal secret material")
    return problems


def _walk_asl(node: Any, where: str, state_names: bool = False) -> Iterator[tuple[str, str, Any]]:
    """(path, field name, value) of every field; a state's name is free text like a comment, so it is given as ""."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Comment":
                continue
            path = f"{where}.{key}"
            yield path, "" if state_names else str(key), value
            yield from _walk_asl(value, path, state_names=key == "States")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk_asl(value, f"{where}[{index}]")
