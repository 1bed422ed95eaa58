"""A deployed abrecon stack, found through its CloudFormation Outputs (template.yaml's Outputs section)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from abrecon_cli.errors import MissingOutputError, StackNotFoundError, aws_errors

if TYPE_CHECKING:
    from mypy_boto3_cloudformation.client import CloudFormationClient

DEFAULT_STACK = "abrecon"
STACK_ENV = "ABRECON_STACK"


def default_stack_name() -> str:
    """ABRECON_STACK, else "abrecon" (samconfig.toml's stack name)."""
    return os.environ.get(STACK_ENV) or DEFAULT_STACK


@dataclass(frozen=True)
class DeployedStack:
    """The resources the operator commands use, by the stack's output names."""

    name: str
    region: str | None
    outputs: Mapping[str, str]

    def output(self, key: str) -> str:
        """An output's value; MissingOutputError names the stack and the output."""
        try:
            return self.outputs[key]
        except KeyError:
            raise MissingOutputError(
                f"stack {self.name!r} has no output {key!r}: it was deployed from another template "
                "(sam build && sam deploy brings it up to date)"
            ) from None

    @property
    def state_machine_arn(self) -> str:
        """The reconciliation state machine."""
        return self.output("StateMachineArn")

    @property
    def bucket(self) -> str:
        """The document bucket."""
        return self.output("DocumentBucketName")

    @property
    def ledger_table(self) -> str:
        """The ledger table."""
        return self.output("LedgerTableName")


class Aws:
    """boto3 clients from one session (credentials and region as boto3 finds them, or --region)."""

    def __init__(self, region: str | None = None) -> None:
        # AWS_REGION as the AWS CLI reads it (boto3 itself reads only AWS_DEFAULT_REGION and the profile's).
        region = region or os.environ.get("AWS_REGION") or None
        with aws_errors("set up an AWS session"):
            self.session = boto3.session.Session(region_name=region)
        self.region = self.session.region_name

    def client(self, service: str) -> Any:
        """A client of the session."""
        with aws_errors(f"create a {service} client"):
            return self.session.client(service)  # type: ignore[call-overload]

    def resource(self, service: str) -> Any:
        """A resource of the session."""
        with aws_errors(f"create a {service} resource"):
            return self.session.resource(service)  # type: ignore[call-overload]


def find_stack(aws: Aws, name: str) -> DeployedStack:
    """Read the stack's outputs; StackNotFoundError when there is no such stack."""
    cfn: CloudFormationClient = aws.client("cloudformation")
    with aws_errors(f"read CloudFormation stack {name!r}"):
        try:
            stacks = cfn.describe_stacks(StackName=name)["Stacks"]
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") == "ValidationError" and "does not exist" in str(error.get("Message", "")):
                raise StackNotFoundError(name, aws.region) from exc
            raise
    if not stacks:
        raise StackNotFoundError(name, aws.region)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", []) if "OutputValue" in o}
    return DeployedStack(name=name, region=aws.region, outputs=outputs)
