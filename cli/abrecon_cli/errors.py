"""What can go wrong for an operator, as typed errors with a message that says what to do, and an exit code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    TokenRetrievalError,
    UnauthorizedSSOTokenError,
)

__all__ = [
    "AwsError",
    "CredentialsError",
    "ExecutionNotFoundError",
    "InvoiceNotFoundError",
    "InvoiceNotStoredError",
    "LwaRefusedError",
    "MissingOutputError",
    "OperatorError",
    "StackNotFoundError",
    "UsageError",
    "aws_errors",
]


class OperatorError(Exception):
    """Base of the CLI's errors; `exit_code` is what the command exits with."""

    exit_code = 1


class UsageError(OperatorError):
    """The command line asks for something that cannot be done (a bad window, an existing --out file, ...)."""

    exit_code = 2


class StackNotFoundError(OperatorError):
    """No CloudFormation stack of that name in this account and region."""

    exit_code = 3

    def __init__(self, name: str, region: str | None) -> None:
        super().__init__(
            f"no CloudFormation stack named {name!r} in {region or 'the default region'}: give the right one with "
            "--stack NAME (or ABRECON_STACK), and the right region with --region (or AWS_REGION)"
        )
        self.name = name


class MissingOutputError(OperatorError):
    """The stack lacks an output the CLI needs: it was deployed from another template."""

    exit_code = 3


class ExecutionNotFoundError(OperatorError):
    """No execution of that ARN or name."""

    exit_code = 4


class InvoiceNotFoundError(OperatorError):
    """Neither the ledger nor the stored invoice details know the invoice number."""

    exit_code = 4


class InvoiceNotStoredError(OperatorError):
    """The invoice is known, but its PDF is not stored (failed, deferred, still in progress)."""

    exit_code = 4


class CredentialsError(OperatorError):
    """No usable AWS credentials or region."""

    exit_code = 5


class AwsError(OperatorError):
    """AWS refused or failed a call (access denied, throttling, a service error)."""

    exit_code = 6


class LwaRefusedError(OperatorError):
    """Login with Amazon refused the LWA credentials, or could not be reached to try them."""

    exit_code = 7


_CREDENTIAL_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
    }
)
_NO_CREDENTIALS = (
    "no AWS credentials found: set AWS_PROFILE (and run `aws sso login` for SSO profiles), or export "
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
)


@contextmanager
def aws_errors(what: str) -> Iterator[None]:
    """Turn boto3's exceptions into OperatorErrors that name what was being done and what to do about it."""
    try:
        yield
    except (NoCredentialsError, PartialCredentialsError, TokenRetrievalError, UnauthorizedSSOTokenError) as exc:
        raise CredentialsError(f"{_NO_CREDENTIALS} ({type(exc).__name__} while trying to {what})") from exc
    except NoRegionError as exc:
        raise CredentialsError("no AWS region: give --region, or set AWS_REGION or a profile's region") from exc
    except EndpointConnectionError as exc:
        raise AwsError(f"could not reach AWS to {what}: {exc}") from exc
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = str(error.get("Code", "")), str(error.get("Message", ""))
        if code in _CREDENTIAL_CODES:
            raise CredentialsError(f"AWS rejected the credentials ({code}: {message}); renew them and retry") from exc
        if "AccessDenied" in code or code == "AccessDeniedException":
            raise AwsError(f"AWS denied the permission to {what}: {message}") from exc
        raise AwsError(f"could not {what}: {code}: {message}") from exc
    except BotoCoreError as exc:
        raise AwsError(f"could not {what}: {exc}") from exc
