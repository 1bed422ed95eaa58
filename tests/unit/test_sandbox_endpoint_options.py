"""`abrecon sandbox run --api-endpoint`: what is refused before anything starts, and where credentials come from."""

from __future__ import annotations

import time

import pytest

from abrecon.errors import ConfigurationError
from abrecon_cli.main import main
from abrecon_sandbox.run.options import LWA_CREDENTIAL_ENV, SandboxOptions, lwa_credentials_from
from abrecon_sandbox.run.orchestration import run_sandbox

CREDENTIAL_FLAGS = ["--lwa-client-id", "id-flag", "--lwa-client-secret", "secret-flag", "--lwa-refresh-token", "rt"]


@pytest.mark.parametrize(
    "url", ["http://example.com", "http://10.0.0.5:8080", "ftp://127.0.0.1", "https://", "not a url"]
)
def test_insecure_or_broken_endpoints_are_refused_before_anything_starts(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    assert main(["sandbox", "run", "--api-endpoint", url, *CREDENTIAL_FLAGS]) == 2
    assert time.monotonic() - started < 5  # no moto, no emulator
    error = capsys.readouterr().err
    assert "--api-endpoint" in error
    assert "secret-flag" not in error


def test_plain_http_lwa_endpoint_off_loopback_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["sandbox", "run", "--api-endpoint", "http://127.0.0.1:9", "--lwa-endpoint", "http://lwa.example.com"]
    assert main([*argv, *CREDENTIAL_FLAGS]) == 2
    assert "--lwa-endpoint must use https" in capsys.readouterr().err


def test_refusal_reuses_the_clients_own_loopback_rule() -> None:
    options = SandboxOptions(api_endpoint="http://example.com", lwa_credentials={"client_id": "x"})
    with pytest.raises(ConfigurationError, match="plain http is allowed for loopback hosts only"):
        run_sandbox(options)


def test_flags_override_environment_variables() -> None:
    environ = {name: f"{key}-from-env" for key, name in LWA_CREDENTIAL_ENV.items()}
    assert lwa_credentials_from(client_id="id-flag", environ=environ) == {
        "client_id": "id-flag",
        "client_secret": "client_secret-from-env",
        "refresh_token": "refresh_token-from-env",
    }
    assert lwa_credentials_from(environ=environ)["client_id"] == "client_id-from-env"


def test_missing_credentials_are_named_never_shown(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigurationError) as caught:
        lwa_credentials_from(client_secret="s3cret", environ={})
    message = str(caught.value)
    assert "--lwa-client-id or ABRECON_LWA_CLIENT_ID" in message
    assert "ABRECON_LWA_REFRESH_TOKEN" in message and "CLIENT_SECRET" not in message and "s3cret" not in message


def test_window_needs_both_ends(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["sandbox", "run", "--api-endpoint", "https://sandbox.na.business-api.amazon.com", "--from", "2020-07-09"]
    assert main([*argv, *CREDENTIAL_FLAGS]) == 2
    assert "--from and --to" in capsys.readouterr().err


def test_region_without_emulator_data_needs_another_endpoint(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sandbox", "run", "--region", "EU"]) == 2
    assert "unsupported region 'EU'" in capsys.readouterr().err
