"""Login with Amazon (LWA): exchange the stored refresh token for short-lived access tokens."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters import exceptions as parameter_errors
from botocore.exceptions import BotoCoreError, ClientError

from abrecon._http import RetryPolicy, parse_retry_after, require_secure_url
from abrecon.errors import AuthError, ConfigurationError, ServerError, ThrottledError

__all__ = ["LWA_OPERATION", "LwaTokenProvider", "SecretLoader"]

logger = logging.getLogger(__name__)

LWA_OPERATION = "lwaToken"
SECRET_OPERATION = "secretsmanager:GetSecretValue"  # noqa: S105  # nosec B105 # an operation's name, no secret
# Secrets Manager errors that a later try can get past (the SDK's own retries were spent on them).
_TRANSIENT_AWS_CODES = frozenset(
    {
        "InternalServiceError",
        "ServiceUnavailable",
        "ThrottlingException",
        "RequestLimitExceeded",
        "KMSThrottlingException",
    }
)
SecretLoader = Callable[[str], Mapping[str, Any]]

_SECRET_KEYS = ("client_id", "client_secret", "refresh_token")
# LWA answers these when the credentials themselves are refused. invalid_grant can also be a
# transient outage on Amazon's side, but looping on it hides a revoked token: alert instead.
_CREDENTIAL_ERRORS = frozenset({"invalid_grant", "invalid_client", "unauthorized_client"})
_REFRESH_MARGIN_SECONDS = 300.0
_DEFAULT_EXPIRES_IN = 3600.0
# LWA is called about once an hour; a short budget keeps a Lambda from stalling on an outage.
_DEFAULT_RETRY = RetryPolicy(max_attempts=3, base_delay=0.5, max_delay=5.0)


def _transient_aws_error(cause: BaseException | None) -> tuple[int | None, str] | None:
    """(HTTP status, error code) when an AWS SDK error is a 5xx, a throttle or a broken connection; else None."""
    if isinstance(cause, BotoCoreError):
        return None, type(cause).__name__
    if not isinstance(cause, ClientError):
        return None
    error = cause.response.get("Error", {})
    status = cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = str(error.get("Code", ""))
    if code in _TRANSIENT_AWS_CODES or (isinstance(status, int) and status >= 500):
        return status, code
    return None


def _powertools_secret_loader(secret_id: str) -> Mapping[str, Any]:
    value: Mapping[str, Any] = parameters.get_secret(secret_id, transform="json", max_age=300)
    return value


class LwaTokenProvider:
    """Hands out LWA access tokens, cached in memory until 5 minutes before they expire.

    The secret (JSON with client_id, client_secret, refresh_token) is read through Powertools
    Parameters (cached 300 s) unless ``secret_loader`` is given. Tokens and secret values never
    appear in logs or error messages.
    """

    def __init__(
        self,
        secret_id: str,
        lwa_endpoint: str,
        *,
        session: requests.Session | None = None,
        timeout: float = 10.0,
        secret_loader: SecretLoader | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        retry: RetryPolicy = _DEFAULT_RETRY,
    ) -> None:
        if not secret_id:
            raise ConfigurationError("LWA secret id is empty")
        require_secure_url(lwa_endpoint, "LWA endpoint")
        self.secret_id = secret_id
        self.lwa_endpoint = lwa_endpoint
        self._session = session if session is not None else requests.Session()
        self._timeout = timeout
        self._load_secret = secret_loader if secret_loader is not None else _powertools_secret_loader
        self._clock = clock
        self._sleep = sleep
        self._retry = retry
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self.token_requests = 0  # LWA calls made, for run summaries

    def __repr__(self) -> str:
        # Never show the cached token.
        return f"LwaTokenProvider(secret_id={self.secret_id!r}, lwa_endpoint={self.lwa_endpoint!r})"

    def access_token(self) -> str:
        """A valid access token, fetched from LWA only when the cached one is (nearly) expired."""
        with self._lock:
            now = self._clock()
            if self._token is not None and now < self._refresh_at:
                return self._token
            credentials = self._credentials()
            token, expires_in = self._fetch_token(credentials)
            # Refresh 5 minutes early; for unusually short lifetimes use half the lifetime.
            margin = _REFRESH_MARGIN_SECONDS if expires_in > 2 * _REFRESH_MARGIN_SECONDS else expires_in / 2
            self._token = token
            self._refresh_at = now + expires_in - margin
            return token

    def invalidate(self, refused: str | None = None) -> None:
        """Drop the cached access token (after the API answered 401 or 403).

        With ``refused``, only if the cache still holds that token: a token another thread has fetched
        meanwhile stays. Either way the refused token is never handed out again.
        """
        with self._lock:
            if refused is not None and refused != self._token:
                return
            self._token = None
            self._refresh_at = 0.0

    # --- internals ------------------------------------------------------------------------------

    def _credentials(self) -> dict[str, str]:
        try:
            secret = self._load_secret(self.secret_id)
        except parameter_errors.GetParameterError as exc:
            # Powertools wraps the AWS error (not found, access denied); its text holds no secret value.
            transient = _transient_aws_error(exc.__cause__ or exc.__context__)
            if transient is not None:  # Secrets Manager (or KMS behind it) 5xx/throttling past the SDK's retries
                raise ServerError(
                    SECRET_OPERATION, transient[0], transient[1], f"secret {self.secret_id!r}: {exc}"
                ) from exc
            raise ConfigurationError(f"secret {self.secret_id!r} could not be read: {exc}") from exc
        except parameter_errors.TransformParameterError:
            raise ConfigurationError(f"secret {self.secret_id!r} is not valid JSON") from None
        except Exception as exc:  # noqa: BLE001
            # Any other loader failure is a configuration problem too.
            # No chaining: a custom loader's exception text might quote the secret.
            kind = type(exc).__name__
            raise ConfigurationError(f"secret {self.secret_id!r} could not be read ({kind})") from None
        if not isinstance(secret, Mapping):
            raise ConfigurationError(f"secret {self.secret_id!r} is not a JSON object")
        missing = [key for key in _SECRET_KEYS if not _non_blank(secret.get(key))]
        if missing:
            names = ", ".join(missing)
            raise ConfigurationError(f"secret {self.secret_id!r} lacks non-empty key(s): {names}")
        return {key: str(secret[key]).strip() for key in _SECRET_KEYS}

    def _fetch_token(self, credentials: Mapping[str, str]) -> tuple[str, float]:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": credentials["refresh_token"],
            "client_id": credentials["client_id"],
            "client_secret": credentials["client_secret"],
        }
        attempt = 0
        while True:
            attempt += 1
            self.token_requests += 1
            try:
                resp = self._session.post(
                    self.lwa_endpoint,
                    data=form,
                    headers={"Accept": "application/json"},
                    timeout=self._timeout,
                    allow_redirects=False,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt >= self._retry.max_attempts:
                    raise ServerError(LWA_OPERATION, None, type(exc).__name__, "LWA unreachable") from None
                self._backoff(attempt, None, type(exc).__name__)
                continue

            status = resp.status_code
            if status == 200:
                return self._parse_token(resp)
            body = _json_object(resp)
            error = str(body.get("error") or "") or None
            description = _scrub(str(body.get("error_description") or resp.reason or ""), credentials)
            if status == 429 or status >= 500:
                retry_after = parse_retry_after(resp.headers)
                if attempt >= self._retry.max_attempts:
                    if status == 429:
                        raise ThrottledError(LWA_OPERATION, status, error, description, retry_after)
                    raise ServerError(LWA_OPERATION, status, error, description)
                self._backoff(attempt, retry_after, f"HTTP {status}")
                continue
            if 400 <= status < 500:
                if error in _CREDENTIAL_ERRORS:
                    logger.error("LWA refused the credentials of secret %s: %s", self.secret_id, error)
                # Any other 4xx (invalid_request, invalid_scope, ...) is also not fixed by retrying.
                raise AuthError(LWA_OPERATION, status, error, description or "LWA refused the token request")
            raise ServerError(LWA_OPERATION, status, error, f"unexpected LWA answer {description}".strip())

    def _parse_token(self, resp: requests.Response) -> tuple[str, float]:
        body = _json_object(resp)
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise ServerError(LWA_OPERATION, resp.status_code, "InvalidResponse", "no access_token in answer")
        expires_in = body.get("expires_in", _DEFAULT_EXPIRES_IN)
        try:
            lifetime = float(expires_in)
        except (TypeError, ValueError):
            lifetime = _DEFAULT_EXPIRES_IN
        if not lifetime > 0:
            lifetime = _DEFAULT_EXPIRES_IN
        return token, lifetime

    def _backoff(self, attempt: int, retry_after: float | None, reason: str) -> None:
        delay = self._retry.delay(attempt, retry_after)
        logger.warning("LWA token request failed (%s), attempt %d, retrying in %.2fs", reason, attempt, delay)
        self._sleep(delay)


def _non_blank(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _json_object(resp: requests.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deeply
        return {}
    return body if isinstance(body, dict) else {}


def _scrub(text: str, credentials: Mapping[str, str]) -> str:
    # LWA error descriptions sometimes quote request parameters; never let a credential through.
    for value in credentials.values():
        if value:
            text = text.replace(value, "***")
    return text
