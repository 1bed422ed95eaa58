"""Sending Amazon Business API requests: the access token, retries with backoff, and errors as abrecon.errors.

AmazonBusinessClient (abrecon.client) builds each operation's request on top of this; the presigned document
download is here too, because it shares the retry budget but sends no access token.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import requests
import urllib3
from pydantic import BaseModel, ValidationError

from abrecon._http import RetryPolicy, parse_retry_after, require_secure_url
from abrecon.errors import (
    ApiError,
    AuthError,
    BadRequestError,
    DocumentError,
    DocumentUrlExpiredError,
    NotFoundError,
    ServerError,
    ThrottledError,
)
from abrecon.models import ErrorList

__all__ = ["OP_DOWNLOAD_DOCUMENT", "ApiTransport", "TokenSource", "parse", "readable_entries", "summarise"]

# The client's log name, which operators' filters know.
logger = logging.getLogger("abrecon.client")

OP_DOWNLOAD_DOCUMENT = "downloadDocument"

_RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
_BAD_REQUEST_STATUSES = frozenset({400, 413, 415})
_AUTH_STATUSES = frozenset({401, 403})
_USER_AGENT = "abrecon/0.1 (Language=Python)"
_DOWNLOAD_CHUNK = 64 * 1024

_DEFAULT_RETRY = RetryPolicy()

_M = TypeVar("_M", bound=BaseModel)


class TokenSource(Protocol):
    """What the client needs from LwaTokenProvider (a protocol, so tests can pass a stub)."""

    def access_token(self) -> str:
        """A valid access token."""
        ...

    def invalidate(self, refused: str | None = None) -> None:
        """Forget the cached token (only if it is still ``refused``, when given)."""
        ...


class _RetryableRead(Exception):
    """The body of a download broke off mid-stream."""


class ApiTransport:
    """Sends API requests with retries, token refresh and error mapping.

    Every call carries ``x-amz-access-token`` and a timeout. 429/5xx/connection errors are retried
    per ``retry`` (full jitter, Retry-After honoured); a 401 or 403 invalidates the token and is
    retried once with a fresh one, a second one is AuthError. Errors surface as ``abrecon.errors``
    classes. ``api_calls`` counts HTTP requests sent per operation name, retries included.
    """

    def __init__(
        self,
        endpoint: str,
        tokens: TokenSource,
        *,
        session: requests.Session | None = None,
        timeout: float | tuple[float, float] = (5.0, 30.0),
        retry: RetryPolicy = _DEFAULT_RETRY,
        sleep: Callable[[float], None] = time.sleep,
        pace: Callable[[str], None] | None = None,
    ) -> None:
        require_secure_url(endpoint, "Amazon Business API endpoint")
        self.endpoint = endpoint.rstrip("/")
        self._tokens = tokens
        self._session = session if session is not None else requests.Session()
        self._timeout = timeout
        self._retry = retry
        self._sleep = sleep
        self._pace = pace
        self.api_calls: Counter[str] = Counter()

    def warm_up(self) -> None:
        """Have an access token ready, so a request sent right after a rate-limit reservation goes out at once."""
        self._tokens.access_token()

    def download(self, url: str, *, max_bytes: int) -> bytes:
        """The raw bytes behind a presigned URL, exactly as served.

        No access-token header is sent and Content-Encoding is not decoded (unpacking goes by magic
        bytes). More than ``max_bytes`` or an empty body: DocumentError. 400/403 from the download
        host: DocumentUrlExpiredError (ask getReportDocument for a fresh URL). 429/5xx/broken
        connections are retried, then ServerError. The URL is never logged: it carries a signature.
        """
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        require_secure_url(url, "report document URL")
        host = urlsplit(url).hostname or "?"
        attempt = 0
        while True:
            attempt += 1
            self.api_calls[OP_DOWNLOAD_DOCUMENT] += 1
            try:
                resp = self._session.get(
                    url,
                    # identity: we want the stored bytes, not a transport-compressed copy.
                    headers={"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"},
                    timeout=self._timeout,
                    stream=True,
                    allow_redirects=False,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                self._retry_or_raise(OP_DOWNLOAD_DOCUMENT, attempt, None, None, type(exc).__name__)
                continue
            with resp:
                status = resp.status_code
                if status == 200:
                    try:
                        return _read_capped(resp, max_bytes)
                    except _RetryableRead as exc:
                        self._retry_or_raise(OP_DOWNLOAD_DOCUMENT, attempt, None, None, str(exc))
                        continue
                if status in (400, 403):
                    raise DocumentUrlExpiredError(
                        f"download from {host} refused with HTTP {status}: presigned URL probably expired",
                        status,
                    )
                if status in _RETRYABLE_STATUSES:
                    reason = f"HTTP {status}"
                    self._retry_or_raise(OP_DOWNLOAD_DOCUMENT, attempt, status, resp.headers, reason)
                    continue
                raise DocumentError(f"download from {host} failed with HTTP {status}")

    def call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        ok: tuple[int, ...] = (200,),
        idempotent: bool = True,
    ) -> Any:
        """Send one API request with retries; return the decoded JSON body.

        Not ``idempotent``: only what Amazon cannot have processed (429, a connect timeout) is retried.
        """
        url = self.endpoint + path
        payload = json.dumps(body) if body is not None else None
        attempt = 0
        token_refreshed = False
        while True:
            attempt += 1
            token = self._tokens.access_token()
            headers = {
                "x-amz-access-token": token,
                "Accept": "application/json",
                "User-Agent": _USER_AGENT,
            }
            if payload is not None:
                headers["Content-Type"] = "application/json"
            if self._pace is not None:
                self._pace(operation)  # waits for the account-wide rate limit's token, if this operation is paced
            self.api_calls[operation] += 1
            try:
                # No redirects: requests would carry x-amz-access-token along to another host.
                resp = self._session.request(
                    method,
                    url,
                    params=params,
                    data=payload,
                    headers=headers,
                    timeout=self._timeout,
                    allow_redirects=False,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                if not idempotent and not isinstance(exc, requests.ConnectTimeout):
                    raise ServerError(
                        operation, None, type(exc).__name__, "no answer: the request may have been processed"
                    ) from None
                self._retry_or_raise(operation, attempt, None, None, type(exc).__name__)
                continue
            status = resp.status_code
            if status in ok:
                return _decode_json(operation, resp)
            if status in _AUTH_STATUSES:
                # Never reuse a token Amazon refused: a warm worker would carry it into its next invocation.
                self._tokens.invalidate(token)
                if token_refreshed:
                    raise _auth_error(operation, resp)
                # Revoked, or expired before its declared lifetime (Amazon answers that 403 as well as 401):
                # one more try with a fresh token, outside the retry budget.
                logger.warning("%s answered %d; retrying once with a fresh access token", operation, status)
                token_refreshed = True
                attempt -= 1
                continue
            if status in _RETRYABLE_STATUSES and (idempotent or status == 429):
                self._retry_or_raise(operation, attempt, status, resp.headers, f"HTTP {status}", resp)
                continue
            raise _api_error(operation, resp)

    def _retry_or_raise(
        self,
        operation: str,
        attempt: int,
        status: int | None,
        headers: Mapping[str, str] | None,
        reason: str,
        resp: requests.Response | None = None,
    ) -> None:
        """Sleep before the next attempt, or raise if the retry budget is spent."""
        retry_after = parse_retry_after(headers) if headers is not None else None
        if attempt >= self._retry.max_attempts:
            if resp is not None:
                raise _api_error(operation, resp, retry_after)
            message = f"{reason}, giving up after {attempt} attempts"
            if status == 429:
                raise ThrottledError(operation, status, None, message, retry_after)
            raise ServerError(operation, status, reason if status is None else None, message)
        delay = self._retry.delay(attempt, retry_after)
        logger.warning(
            "%s failed (%s), attempt %d of %d, retrying in %.2fs",
            operation,
            reason,
            attempt,
            self._retry.max_attempts,
            delay,
        )
        self._sleep(delay)


# --- module helpers -------------------------------------------------------------------------------


def _decode_json(operation: str, resp: requests.Response) -> Any:
    if not resp.content:
        return {}
    try:
        # parse_float=Decimal: numbers that come as JSON numbers keep their exact value.
        return json.loads(resp.content, parse_float=Decimal)
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deeply
        raise ServerError(operation, resp.status_code, "InvalidResponse", "answer is not JSON") from None


def parse(operation: str, model: type[_M], data: Any) -> _M:
    """The answer as ``model``; an answer that does not fit is ServerError InvalidResponse (a server fault)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ServerError(operation, 200, "InvalidResponse", summarise(exc)) from None


def readable_entries(operation: str, data: Any, name: str, model: type[_M]) -> list[_M]:
    """The entries of an answer's list ``name`` that parse as ``model``; an unreadable one is skipped with a warning,
    so one bad entry does not cost the batch's others. A missing list is an empty one; anything else: ServerError."""
    entries = data.get(name) if isinstance(data, dict) else None
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise ServerError(operation, 200, "InvalidResponse", "answer list is not a list")
    result: list[_M] = []
    for index, entry in enumerate(entries):
        try:
            result.append(model.model_validate(entry))
        except ValidationError as exc:
            logger.warning("%s: skipping unreadable answer entry %d: %s", operation, index, summarise(exc))
    return result


def summarise(exc: ValidationError) -> str:
    """The first five of a validation error's problems, as text to put in an error message."""
    # Field locations and reasons only: input values could be presigned URLs or personal data.
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]
    return "; ".join(parts[:5]) + (f" (+{len(parts) - 5} more)" if len(parts) > 5 else "")


def _error_body(resp: requests.Response) -> tuple[str | None, str]:
    """(code, message) from an error answer; tolerates bodies that are not JSON."""
    try:
        data = json.loads(resp.content) if resp.content else None
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deeply
        data = None
    if isinstance(data, dict):
        try:
            errors = ErrorList.model_validate(data).errors
        except ValidationError:
            errors = []
        if errors:
            code = next((e.code for e in errors if e.code), None)
            messages = []
            for e in errors:
                text = e.message or ""
                if e.details:
                    text = f"{text} ({e.details})" if text else e.details
                if text:
                    messages.append(text)
            return code, "; ".join(messages) or (resp.reason or "")
        # Some gateways answer {"message": "..."} instead of an ErrorList.
        for key in ("message", "Message"):
            if isinstance(data.get(key), str):
                return None, data[key]
    text = resp.text.strip() if resp.content else ""
    return None, (" ".join(text.split())[:200] or resp.reason or "")


def _auth_error(operation: str, resp: requests.Response) -> AuthError:
    """A 401/403 that a fresh access token did not cure, saying what it most likely is."""
    status = resp.status_code
    code, message = _error_body(resp)
    if status == 403:
        likely = (
            "refused again with a freshly exchanged access token, so not an expired token: the application "
            "likely lacks the 'Business Purchase Reconciliation' role, or the account has not authorized it"
        )
    else:
        likely = (
            "refused again with a freshly exchanged access token: the application's authorization was likely "
            "revoked, or the refresh token belongs to another region's endpoint"
        )
    return AuthError(operation, status, code, f"{message} ({likely})" if message else likely)


def _api_error(operation: str, resp: requests.Response, retry_after: float | None = None) -> ApiError:
    status = resp.status_code
    code, message = _error_body(resp)
    if status == 429:
        return ThrottledError(operation, status, code, message, retry_after)
    if status in (401, 403):
        return AuthError(operation, status, code, message)
    if status == 404:
        return NotFoundError(operation, status, code, message)
    if status in _BAD_REQUEST_STATUSES or 400 <= status < 500:
        return BadRequestError(operation, status, code, message)
    if status >= 500:
        return ServerError(operation, status, code, message)
    return ApiError(operation, status, code, message or "unexpected answer")


def _read_capped(resp: requests.Response, max_bytes: int) -> bytes:
    declared = resp.headers.get("Content-Length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
        raise DocumentError(f"document is {int(declared)} bytes, more than the limit of {max_bytes}")
    data = bytearray()
    try:
        while True:
            # decode_content=False: the bytes as served; Content-Encoding: gzip is NOT undone here,
            # or a gzip-labelled gzip would be unpacked twice.
            chunk = resp.raw.read(_DOWNLOAD_CHUNK, decode_content=False)
            if not chunk:
                break
            data += chunk
            if len(data) > max_bytes:
                raise DocumentError(f"document is larger than the limit of {max_bytes} bytes")
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise _RetryableRead(f"download broke off: {type(exc).__name__}") from None
    if not data:
        raise DocumentError("document is empty")
    return bytes(data)
