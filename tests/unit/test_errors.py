"""Error classes: hierarchy the state machine matches on, readable and redacted messages."""

from __future__ import annotations

import pickle

import pytest

from abrecon.errors import (
    AbreconError,
    ApiError,
    AuthError,
    BadRequestError,
    ConfigurationError,
    DocumentError,
    DocumentUrlExpiredError,
    NotFoundError,
    ServerError,
    ThrottledError,
)


@pytest.mark.parametrize(
    ("cls", "base"),
    [
        (ConfigurationError, AbreconError),
        (DocumentError, AbreconError),
        (DocumentUrlExpiredError, DocumentError),
        (ApiError, AbreconError),
        (ThrottledError, ApiError),
        (AuthError, ApiError),
        (NotFoundError, ApiError),
        (BadRequestError, ApiError),
        (ServerError, ApiError),
    ],
)
def test_hierarchy(cls: type[Exception], base: type[Exception]) -> None:
    assert issubclass(cls, base)
    assert issubclass(cls, Exception)


def test_api_error_attributes_and_text() -> None:
    err = NotFoundError("getReport", 404, "NotFound", "Report ID323 not found")
    assert (err.operation, err.status, err.code, err.message) == (
        "getReport",
        404,
        "NotFound",
        "Report ID323 not found",
    )
    assert str(err) == "getReport failed (HTTP 404 NotFound): Report ID323 not found"


def test_api_error_without_status_or_code() -> None:
    assert str(ServerError("getTransactions", None, None, "connection reset")) == (
        "getTransactions failed (no HTTP answer): connection reset"
    )


@pytest.mark.parametrize(
    "secret",
    ["Atza|IwEBIA-access-token_value", "Atzr|IwEBIB-refresh.token", "amzn1.oa2-cs.v1.0123456789abcdef"],
)
def test_messages_are_redacted(secret: str) -> None:
    err = AuthError("lwaToken", 400, "invalid_grant", f"token '{secret}' refused")
    assert secret not in str(err)
    assert secret not in err.message
    assert "token '***' refused" in str(err)


def test_long_messages_are_capped() -> None:
    err = BadRequestError("createReport", 400, None, "x" * 5000)
    assert len(err.message) < 600


def test_throttled_keeps_retry_after_through_pickle() -> None:
    err = ThrottledError("createReport", 429, "QuotaExceeded", "slow down", retry_after_seconds=60.0)
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is ThrottledError
    assert (copy.operation, copy.status, copy.code, copy.message, copy.retry_after_seconds) == (
        "createReport",
        429,
        "QuotaExceeded",
        "slow down",
        60.0,
    )


def test_url_expired_keeps_status_through_pickle() -> None:
    copy = pickle.loads(pickle.dumps(DocumentUrlExpiredError("expired", 403)))
    assert type(copy) is DocumentUrlExpiredError
    assert copy.status == 403 and str(copy) == "expired"


def test_class_names_are_stable() -> None:
    # The state machine's Retry/Catch rules match these names.
    assert [c.__name__ for c in (ThrottledError, AuthError, NotFoundError, BadRequestError, ServerError)] == [
        "ThrottledError",
        "AuthError",
        "NotFoundError",
        "BadRequestError",
        "ServerError",
    ]
