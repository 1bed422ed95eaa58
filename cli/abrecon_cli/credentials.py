"""`abrecon credentials set`: the LWA client id, client secret and refresh token into the stack's secret.

They are read from prompts that do not echo, or as one JSON object on standard input (`--stdin`, and always
when standard input is not a terminal), never from the command line, so they stay out of shell history and the
process list. A token exchange at the stack's LWA endpoint proves them before anything is written; with
`--check-only` nothing is written at all. No value is ever printed or logged.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

from abrecon.errors import AbreconError
from abrecon_cli.amazon import LWA_FIELDS, explain, missing_fields, token_provider
from abrecon_cli.deployed import Aws, find_stack
from abrecon_cli.doctor import Handler, Subcommands
from abrecon_cli.errors import LwaRefusedError, UsageError, aws_errors

__all__ = ["add_command", "cmd_credentials_set", "read_credentials"]

_PROMPTS = {
    "client_id": "LWA client id (amzn1.application-oa2-client...): ",
    "client_secret": "LWA client secret: ",  # nosec B105 # a prompt, not a password
    "refresh_token": "LWA refresh token (Atzr|...): ",  # nosec B105 # a prompt, not a token
}
_MAX_STDIN_CHARS = 64 * 1024


def read_credentials(from_stdin: bool, stdin: TextIO, prompt: Callable[[str], str] | None = None) -> dict[str, str]:
    """The three values, from JSON on stdin or from prompts (getpass: no echo); UsageError names a missing or
    unknown key, never a value."""
    if from_stdin:
        text = stdin.read(_MAX_STDIN_CHARS + 1)
        if len(text) > _MAX_STDIN_CHARS:
            raise UsageError("standard input holds more than 64 KiB: expected one small JSON object")
        try:
            given: Any = json.loads(text)
        except ValueError:
            # No detail: json's message quotes the text around the error, which is a secret.
            raise UsageError(
                'standard input is not JSON: give {"client_id": ..., "client_secret": ..., "refresh_token": ...}'
            ) from None
        if not isinstance(given, dict):
            raise UsageError("standard input is not a JSON object with client_id, client_secret and refresh_token")
        unknown = sorted(set(given) - set(LWA_FIELDS))
        if unknown:
            raise UsageError(f"unknown key(s) {', '.join(map(repr, unknown))}: expected {', '.join(LWA_FIELDS)}")
    else:
        ask = prompt or getpass.getpass
        given = {name: ask(_PROMPTS[name]) for name in LWA_FIELDS}
    missing = missing_fields(given)
    if missing:
        raise UsageError(f"no value given for {', '.join(missing)}")
    return {name: str(given[name]).strip() for name in LWA_FIELDS}


def cmd_credentials_set(args: argparse.Namespace, out: TextIO) -> int:
    """Verify the LWA credentials by a token exchange, then (unless --check-only) store them in the stack's secret."""
    aws = Aws(args.region)
    stack = find_stack(aws, args.stack)
    secret_id, endpoint = stack.output("LwaSecretArn"), stack.output("LwaEndpoint")
    from_stdin = args.stdin or not sys.stdin.isatty()
    credentials = read_credentials(from_stdin, sys.stdin)
    try:
        token_provider(stack, credentials).access_token()
    except AbreconError as exc:
        raise LwaRefusedError(f"not stored: {explain(exc)}") from None
    print(f"✔ LWA at {endpoint} accepted the credentials (a token exchange worked)", file=out)
    if args.check_only:
        print(f"--check-only: {secret_id} left as it was", file=out)
        return 0
    needs = "secretsmanager:PutSecretValue, kms:GenerateDataKey and kms:Decrypt"
    with aws_errors(f"store the credentials in {secret_id} (needs {needs})"):
        version = aws.client("secretsmanager").put_secret_value(
            SecretId=secret_id, SecretString=json.dumps(credentials)
        )["VersionId"]
    print(f"✔ stored in {secret_id} (version {version}); the functions read it within 5 minutes", file=out)
    print(f"Next: abrecon doctor --stack {stack.name}", file=out)
    return 0


def add_command(commands: Subcommands, common: argparse.ArgumentParser, handler: Handler) -> None:
    """Add `abrecon credentials set` (with the other verbs' --stack/--region)."""
    credentials = commands.add_parser("credentials", help="the stack's Login with Amazon credentials")
    verbs = credentials.add_subparsers(dest="credentials_command", required=True)
    setter = verbs.add_parser(
        "set",
        parents=[common],
        help="verify the LWA credentials by a token exchange and store them in the stack's secret",
        description="Read the LWA client id, client secret and refresh token from prompts that do not echo, or as "
        'JSON on standard input ({"client_id": ..., "client_secret": ..., "refresh_token": ...}; always when '
        "standard input is not a terminal), verify them by a token exchange at the stack's LWA endpoint, then "
        "store them in the stack's secret. Nothing is written if LWA refuses them.",
    )
    setter.add_argument("--stdin", action="store_true", help="read JSON from standard input even on a terminal")
    setter.add_argument("--check-only", action="store_true", help="verify only; write nothing")
    setter.set_defaults(func=handler(cmd_credentials_set))
