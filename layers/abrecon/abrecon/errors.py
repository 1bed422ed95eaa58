"""Exception hierarchy of the abrecon package.

The state machine's Retry/Catch rules match these class names: do not rename them.
Messages are meant for logs and alerts, so they never carry access tokens, refresh tokens,
client secrets or presigned URLs.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "AbreconError",
    "AnswerLostError",
    "ApiError",
    "AuthError",
    "BadRequestError",
    "ConfigurationError",
    "DocumentError",
    "DocumentUrlExpiredError",
    "NotFoundError",
    "ServerError",
    "ThrottledError",
    "redact",
]

# LWA access tokens start with "Atza|", refresh tokens with "Atzr|"; client secrets with
# "amzn1.oa2-cs." Servers sometimes echo request data into error messages, so scrub them.
_SECRET_PATTERNS = (
    re.compile(r"Atz[ar]\|[^\s\"',;]+"),
    re.compile(r"amzn1\.oa2-cs\.[^\s\"',;]+"),
)
_MAX_MESSAGE_CHARS = 500


def redact(text: str) -> str:
    """Replace anything that looks like an LWA token or client secret, and cap the length."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub("***", text)
    if len(text) > _MAX_MESSAGE_CHARS:
        text = text[:_MAX_MESSAGE_CHARS] + "..."
    return text


class AbreconError(Exception):
    """Base class of every error raised by the abrecon package."""


class ConfigurationError(AbreconError):
    """Missing or malformed settings or secret. Names the setting or secret id, never a value."""


class InvalidInputError(AbreconError):
    """A step's input does not match its model: a bug or a hand-started execution with a bad input."""


class DocumentError(AbreconError):
    """A report document that is corrupt, not a PDF, too large or empty."""


class DocumentUrlExpiredError(DocumentError):
    """The presigned download URL was refused (expired): fetch a fresh one with getReportDocument."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.args[0], self.status))


class ApiError(AbreconError):
    """An Amazon Business API (or LWA) call failed.

    ``operation`` is the API operation name (getTransactions, createReport, lwaToken, ...),
    ``status`` the HTTP status (None when no answer arrived), ``code`` the error code from the
    body, ``message`` the human-readable part (redacted).
    """

    def __init__(self, operation: str, status: int | None, code: str | None, message: str) -> None:
        self.operation = operation
        self.status = status
        self.code = code
        self.message = redact(message)
        super().__init__(operation, status, code, self.message)

    def __str__(self) -> str:
        status = f"HTTP {self.status}" if self.status is not None else "no HTTP answer"
        code = f" {self.code}" if self.code else ""
        return f"{self.operation} failed ({status}{code}): {self.message}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep subclass attributes (retry_after_seconds) when pickled across processes.
        return (
            self.__class__,
            (self.operation, self.status, self.code, self.message),
            self.__dict__,
        )


class ThrottledError(ApiError):
    """HTTP 429 still answered after the retry budget was spent."""

    def __init__(
        self,
        operation: str,
        status: int | None,
        code: str | None,
        message: str,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(operation, status, code, message)
        self.retry_after_seconds = retry_after_seconds


class AuthError(ApiError):
    """401/403 from the API, or LWA refused the credentials (invalid_grant and friends)."""


class NotFoundError(ApiError):
    """HTTP 404."""


class BadRequestError(ApiError):
    """HTTP 400/413/415, or a request rejected by client-side validation before any call."""


class ServerError(ApiError):
    """5xx, connection errors and timeouts after the retry budget was spent."""


class AnswerLostError(ServerError):
    """A request that is not safe to repeat (createReport) got no intact answer: a 5xx, a broken connection or a
    cut-off body. Amazon may have processed it, so it is not retried blindly: look for what it made first."""
