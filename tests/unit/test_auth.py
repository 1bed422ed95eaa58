"""LwaTokenProvider: token exchange, caching, secret handling, error mapping, retries."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytest
import requests
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError
from botocore.exceptions import ClientError
from unit_fakes import FakeHttp, Reply, Sleeps

from abrecon.auth import LwaTokenProvider
from abrecon.errors import AuthError, ConfigurationError, ServerError, ThrottledError

LWA = "https://api.amazon.com/auth/o2/token"
SECRET_ID = "abrecon/lwa"
CREDENTIALS = {
    "client_id": "amzn1.application-oa2-client.abc",
    "client_secret": "amzn1.oa2-cs.v1.SECRETVALUE",
    "refresh_token": "Atzr|REFRESHTOKENVALUE",
}


def token_reply(token: str = "Atza|ACCESS-1", expires_in: Any = 3600) -> Reply:
    body: dict[str, Any] = {"access_token": token, "token_type": "bearer"}
    if expires_in is not None:
        body["expires_in"] = expires_in
    return Reply(200, json_body=body)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(
    http: FakeHttp,
    sleeps: Sleeps | None = None,
    clock: Clock | None = None,
    loader: Any = None,
    endpoint: str = LWA,
) -> LwaTokenProvider:
    return LwaTokenProvider(
        SECRET_ID,
        endpoint,
        session=http.session,
        timeout=7.5,
        secret_loader=loader if loader is not None else (lambda _sid: dict(CREDENTIALS)),
        clock=clock or Clock(),
        sleep=sleeps or Sleeps(),
    )


def assert_no_secret(text: str) -> None:
    for value in CREDENTIALS.values():
        assert value not in text
    assert "Atza|" not in text


def test_exchanges_refresh_token_form_encoded(http: FakeHttp) -> None:
    http.queue(token_reply())
    provider = make(http)
    assert provider.access_token() == "Atza|ACCESS-1"
    (seen,) = http.seen
    assert seen.method == "POST" and seen.url == LWA
    assert seen.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert seen.form() == {"grant_type": "refresh_token", **CREDENTIALS}
    assert seen.timeout == 7.5


def test_token_cached_until_five_minutes_before_expiry(http: FakeHttp) -> None:
    clock = Clock()
    http.queue(token_reply("Atza|ONE"), token_reply("Atza|TWO"))
    provider = make(http, clock=clock)
    assert provider.access_token() == "Atza|ONE"
    clock.now += 3600 - 300 - 1
    assert provider.access_token() == "Atza|ONE"
    assert len(http.seen) == 1
    clock.now += 1  # exactly 5 minutes before expiry
    assert provider.access_token() == "Atza|TWO"
    assert len(http.seen) == 2
    assert provider.token_requests == 2


def test_short_lived_token_is_used_for_half_its_life(http: FakeHttp) -> None:
    clock = Clock()
    http.queue(token_reply("Atza|ONE", expires_in=120), token_reply("Atza|TWO"))
    provider = make(http, clock=clock)
    provider.access_token()
    clock.now += 59
    assert provider.access_token() == "Atza|ONE"
    clock.now += 1
    assert provider.access_token() == "Atza|TWO"


@pytest.mark.parametrize("expires_in", [None, "soon", 0, -5])
def test_missing_or_bad_expires_in_defaults_to_an_hour(http: FakeHttp, expires_in: Any) -> None:
    clock = Clock()
    http.queue(token_reply("Atza|ONE", expires_in=expires_in))
    provider = make(http, clock=clock)
    provider.access_token()
    clock.now += 3000
    assert provider.access_token() == "Atza|ONE"
    assert len(http.seen) == 1


def test_invalidate_forces_a_new_token(http: FakeHttp) -> None:
    http.queue(token_reply("Atza|ONE"), token_reply("Atza|TWO"))
    provider = make(http)
    assert provider.access_token() == "Atza|ONE"
    provider.invalidate()
    assert provider.access_token() == "Atza|TWO"


def test_invalidate_of_a_refused_token_keeps_a_newer_one(http: FakeHttp) -> None:
    # Two threads of one warm worker: the second to see its 403 must not drop the token the first just fetched.
    http.queue(token_reply("Atza|ONE"), token_reply("Atza|TWO"), token_reply("Atza|THREE"))
    provider = make(http)
    assert provider.access_token() == "Atza|ONE"
    provider.invalidate("Atza|ONE")
    assert provider.access_token() == "Atza|TWO"
    provider.invalidate("Atza|ONE")  # late news about the old token
    assert provider.access_token() == "Atza|TWO"
    provider.invalidate("Atza|TWO")
    assert provider.access_token() == "Atza|THREE"
    assert len(http.seen) == 3


def test_default_loader_uses_powertools_get_secret(http: FakeHttp, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []

    def fake_get_secret(name: str, transform: str | None = None, max_age: int | None = None) -> Any:
        calls.append((name, transform, max_age))
        return dict(CREDENTIALS)

    monkeypatch.setattr(parameters, "get_secret", fake_get_secret)
    http.queue(token_reply())
    provider = LwaTokenProvider(SECRET_ID, LWA, session=http.session)
    assert provider.access_token() == "Atza|ACCESS-1"
    assert calls == [(SECRET_ID, "json", 300)]


# --- secret problems -----------------------------------------------------------------------------


def _raise(exc: BaseException) -> Any:
    def loader(_secret_id: str) -> Mapping[str, Any]:
        raise exc

    return loader


def _aws_failure(code: str, status: int) -> Any:
    """A loader failing as Powertools does when the SDK's retries are spent: GetParameterError from a ClientError."""

    def loader(_secret_id: str) -> Mapping[str, Any]:
        response: Any = {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}
        try:
            raise ClientError(response, "GetSecretValue")
        except ClientError as exc:
            raise GetParameterError(str(exc))  # noqa: B904 - Powertools raises it like this (context, no cause)

    return loader


@pytest.mark.parametrize(
    ("code", "status", "transient"),
    [
        ("InternalServiceError", 500, True),
        ("ServiceUnavailable", 503, True),
        ("ThrottlingException", 400, True),
        ("ResourceNotFoundException", 400, False),
        ("AccessDeniedException", 400, False),
    ],
)
def test_a_secrets_manager_outage_is_a_retryable_error_not_a_configuration_one(
    http: FakeHttp, code: str, status: int, transient: bool
) -> None:
    provider = make(http, loader=_aws_failure(code, status))
    with pytest.raises(ServerError if transient else ConfigurationError) as caught:  # ServerError: the ASL retries
        provider.access_token()
    assert type(caught.value) is (ServerError if transient else ConfigurationError)
    assert SECRET_ID in str(caught.value)


@pytest.mark.parametrize(
    ("loader", "fragment"),
    [
        (_raise(GetParameterError("ResourceNotFoundException: can't find the secret")), "could not be read"),
        (_raise(TransformParameterError("Expecting value: line 1 column 1 (char 0)")), "not valid JSON"),
        (_raise(ValueError(f"bad value {CREDENTIALS['client_secret']}")), "ValueError"),
        (lambda _sid: ["not", "a", "mapping"], "not a JSON object"),
        (lambda _sid: {"client_id": "x", "client_secret": CREDENTIALS["client_secret"]}, "refresh_token"),
        (lambda _sid: {**CREDENTIALS, "client_id": "  "}, "client_id"),
        (lambda _sid: {**CREDENTIALS, "refresh_token": 42}, "refresh_token"),
    ],
)
def test_secret_problems_are_configuration_errors(http: FakeHttp, loader: Any, fragment: str) -> None:
    provider = make(http, loader=loader)
    with pytest.raises(ConfigurationError) as caught:
        provider.access_token()
    message = str(caught.value)
    assert SECRET_ID in message
    assert fragment in message
    assert_no_secret(message)
    assert http.seen == []


def test_custom_loader_exception_is_not_chained(http: FakeHttp) -> None:
    provider = make(http, loader=_raise(RuntimeError(CREDENTIALS["refresh_token"])))
    with pytest.raises(ConfigurationError) as caught:
        provider.access_token()
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_missing_keys_are_named_without_values(http: FakeHttp) -> None:
    provider = make(http, loader=lambda _sid: {"client_secret": CREDENTIALS["client_secret"]})
    with pytest.raises(ConfigurationError, match="client_id, refresh_token"):
        provider.access_token()


# --- endpoint checks -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:8080/auth/o2/token",
        "http://127.9.9.9/auth/o2/token",
        "http://localhost:5000/auth/o2/token",
        "http://[::1]:5000/auth/o2/token",
        "https://api.amazon.com/auth/o2/token",
    ],
)
def test_https_or_loopback_endpoints_accepted(http: FakeHttp, endpoint: str) -> None:
    http.queue(token_reply())
    assert make(http, endpoint=endpoint).access_token() == "Atza|ACCESS-1"


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://api.amazon.com/auth/o2/token",
        "http://127.0.0.1.evil.example/auth",
        "http://10.0.0.1/auth",
        "ftp://127.0.0.1/auth",
        "api.amazon.com/auth/o2/token",
        "",
    ],
)
def test_insecure_endpoints_refused(http: FakeHttp, endpoint: str) -> None:
    with pytest.raises(ConfigurationError):
        make(http, endpoint=endpoint)


def test_empty_secret_id_refused(http: FakeHttp) -> None:
    with pytest.raises(ConfigurationError):
        LwaTokenProvider("", LWA, session=http.session)


# --- LWA errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, "invalid_grant"), (401, "invalid_client"), (400, "unauthorized_client"), (400, "invalid_request")],
)
def test_refused_credentials_are_auth_errors_without_retry(
    http: FakeHttp, sleeps: Sleeps, status: int, error: str
) -> None:
    # LWA's description may quote request parameters; they must not reach the message.
    description = f"The request has an invalid grant parameter : {CREDENTIALS['refresh_token']}"
    http.queue(Reply(status, json_body={"error": error, "error_description": description}))
    provider = make(http, sleeps=sleeps)
    with pytest.raises(AuthError) as caught:
        provider.access_token()
    err = caught.value
    assert (err.operation, err.status, err.code) == ("lwaToken", status, error)
    assert "invalid grant parameter" in err.message
    assert_no_secret(str(err))
    assert len(http.seen) == 1
    assert sleeps.calls == []


def test_server_errors_are_retried_then_succeed(http: FakeHttp, sleeps: Sleeps) -> None:
    http.queue(Reply(500, body=b"oops"), requests.ConnectionError("reset"), token_reply())
    assert make(http, sleeps=sleeps).access_token() == "Atza|ACCESS-1"
    assert len(http.seen) == 3
    assert len(sleeps.calls) == 2
    assert all(0 <= s <= 5.0 for s in sleeps.calls)


def test_persistent_server_error_becomes_server_error(http: FakeHttp, sleeps: Sleeps) -> None:
    http.queue(*[Reply(503, json_body={"error": "server_error"})] * 3)
    with pytest.raises(ServerError) as caught:
        make(http, sleeps=sleeps).access_token()
    assert caught.value.status == 503
    assert len(http.seen) == 3 and len(sleeps.calls) == 2


def test_persistent_connection_failure_becomes_server_error(http: FakeHttp, sleeps: Sleeps) -> None:
    http.queue(requests.ConnectTimeout("slow"), requests.ReadTimeout("slow"), requests.ConnectionError("x"))
    with pytest.raises(ServerError) as caught:
        make(http, sleeps=sleeps).access_token()
    assert caught.value.status is None
    assert caught.value.code == "ConnectionError"
    assert len(http.seen) == 3


def test_throttling_honours_retry_after_then_raises(http: FakeHttp, sleeps: Sleeps) -> None:
    http.queue(*[Reply(429, headers={"Retry-After": "2"})] * 3)
    with pytest.raises(ThrottledError) as caught:
        make(http, sleeps=sleeps).access_token()
    assert caught.value.retry_after_seconds == 2.0
    assert sleeps.calls == [2.0, 2.0]


def test_answer_without_access_token_is_server_error(http: FakeHttp) -> None:
    http.queue(Reply(200, json_body={"token_type": "bearer"}))
    with pytest.raises(ServerError, match="access_token"):
        make(http).access_token()


def test_non_json_answer_is_server_error(http: FakeHttp) -> None:
    http.queue(Reply(200, body=b"<html>maintenance</html>"))
    with pytest.raises(ServerError):
        make(http).access_token()


def test_redirects_are_not_followed(http: FakeHttp) -> None:
    http.queue(Reply(302, headers={"Location": "https://elsewhere.example/token"}))
    with pytest.raises(ServerError):
        make(http).access_token()
    assert len(http.seen) == 1


def test_tokens_and_secrets_never_logged_or_shown(
    http: FakeHttp, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    http.queue(Reply(500), token_reply("Atza|VISIBLE-ONLY-TO-CALLER"))
    provider = make(http, sleeps=sleeps)
    token = provider.access_token()
    assert token == "Atza|VISIBLE-ONLY-TO-CALLER"
    assert caplog.records  # the retry was logged...
    assert token not in caplog.text  # ...without the token
    assert_no_secret(caplog.text)
    assert token not in repr(provider)
