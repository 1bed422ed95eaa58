"""The checks that start every Amazon Business API call, as request hooks: count the call, inject the per-call
faults, check the access token, then the rate limit (``guard``); and on the way out the request id and rate-limit
headers and the answer-side faults: missing fields, cut-off JSON, the decision to drop the connection (``finish``).

A view's endpoint is its operation's name (``getTransactions``, ...): that is how the guard knows the operation.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from .faults import API_OPERATIONS
from .state import ServerState
from .web import current_state, error_response

RESET_FLAG = "abrecon.reset"
_SERVER_ERRORS = {
    500: ("InternalFailure", "We encountered an internal error. Please try again."),
    503: ("ServiceUnavailable", "Service temporarily unavailable. Please try again."),
    504: ("GatewayTimeout", "The server did not answer in time. Please try again."),
}
_DENIED = "Access to requested resource is denied."


def install(app: Flask) -> None:
    """Register the guard, the answer-side faults and the error shape on app."""
    app.before_request(guard)
    app.after_request(finish)
    app.register_error_handler(HTTPException, http_error)


def delay(state: ServerState, key: str) -> None:
    """Sleep as long as the fault profile delays this call (the slow profile)."""
    seconds = state.injector.delay_seconds(key)
    if seconds:
        time.sleep(seconds)


def server_error(status: int) -> Response:
    """A 5xx in the APIs' error shape."""
    code, message = _SERVER_ERRORS[status]
    return error_response(status, code, message)


def guard() -> Response | None:
    """Before an API operation's view: its refusal (401, 403, 429, 5xx), or None to let the view answer."""
    operation = (request.endpoint or "").rpartition(".")[2]
    # LWA and the presigned downloads carry no access token; Flask answers OPTIONS without the view.
    if operation not in API_OPERATIONS or request.method == "OPTIONS":
        return None
    state = current_state()
    faults = state.injector
    state.limiter.count_call(operation)
    key = faults.begin(operation)
    request.environ["abrecon.operation"] = operation
    request.environ["abrecon.fault_key"] = key
    delay(state, key)
    refused = _token_refusal(state, operation)
    if refused is not None:
        return refused
    if faults.throttled(key):
        state.limiter.count_throttled(operation)
        return _throttled(state, 1.0)
    status = faults.server_error(key)
    if status is not None:
        # Half of createReport's errors come after the report was made: a blind retry duplicates it.
        if operation != "createReport" or not faults.error_after_processing(key):
            return server_error(status)
        request.environ["abrecon.fail_after"] = status
    admitted, wait_s = state.limiter.admit(operation)
    if not admitted:
        return _throttled(state, wait_s)
    lost = faults.lost_answer(key)
    if lost == "server-error-after":
        request.environ["abrecon.fail_after"] = 500
    request.environ["abrecon.lost"] = lost
    return None


def _token_refusal(state: ServerState, operation: str) -> Response | None:
    """401 or 403 for a missing, unknown, expired or revoked access token, or an operation refused whatever the
    token (Emulator.refuse); None when the token is good."""
    faults = state.injector
    token = request.headers.get("x-amz-access-token", "")
    with state.lock:
        expiry = state.access_tokens.get(token)
    if not token:
        return error_response(401, "Unauthorized", _DENIED, "Missing access token.")
    revoked = expiry is not None and faults.revoke_now(token)
    if revoked:
        with state.lock:
            state.access_tokens.pop(token, None)
    if expiry is None or expiry <= time.monotonic() or revoked:
        return error_response(
            401, "Unauthorized", _DENIED, "The access token you provided is revoked, malformed or invalid."
        )
    with state.lock:
        refused_with = state.refusals.get(operation)
    if refused_with is not None:
        return error_response(refused_with, "Unauthorized", _DENIED)
    if faults.expired_early(token):  # the models document 403 for "... Expired Token ..."
        return error_response(403, "Unauthorized", _DENIED, "Expired Token")
    return None


def _throttled(state: ServerState, wait_s: float) -> Response:
    response = error_response(429, "QuotaExceeded", "You exceeded your quota for the requested resource.")
    if state.config.retry_after:
        response.headers["Retry-After"] = str(max(1, round(wait_s + 0.5)))
    return response


def finish(response: Response) -> Response:
    """After every request: a 5xx after processing, the request id and rate-limit headers, the answer-side
    faults, and a createReport whose answer did not reach the caller marked unanswered."""
    state = current_state()
    environ = request.environ
    ok = 200 <= response.status_code < 300
    fail_after = environ.get("abrecon.fail_after")
    if isinstance(fail_after, int) and ok:
        response, ok = server_error(fail_after), False
    response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
    operation = environ.get("abrecon.operation")
    if operation in state.limiter.plans and ok:
        response.headers["x-amzn-RateLimit-Limit"] = state.limiter.plans[operation].header
    key = environ.get("abrecon.fault_key")
    cut = False
    if isinstance(key, str) and operation in API_OPERATIONS:
        cut = _fault_the_answer(state, key, response, environ) if ok else False
        if state.injector.connection_reset(key) or environ.get("abrecon.lost") == "reset":
            environ[RESET_FLAG] = True
    created = environ.get("abrecon.report_id")
    if isinstance(created, str) and (not ok or cut or environ.get(RESET_FLAG)):
        with state.lock:
            state.reports[created].answered = False
    return response


def _fault_the_answer(state: ServerState, key: str, response: Response, environ: dict[str, Any]) -> bool:
    """Strip fields from and cut off a JSON answer as the profile says; True if the body was cut off."""
    if response.mimetype != "application/json":
        return False
    faults = state.injector
    data = response.get_data()
    if faults.strips_fields:
        data = json.dumps(faults.strip_fields(key, json.loads(data))).encode()
    cut = len(truncated := faults.truncate(key, data)) < len(data)
    if environ.get("abrecon.lost") == "cut-off":
        truncated, cut = data[: len(data) // 2], True
    response.set_data(truncated)
    return cut


def http_error(exc: HTTPException) -> Response:
    """Flask's own errors (404, 405, ...) in the APIs' error shape."""
    code = exc.code or 500
    name = (exc.name or "Error").replace(" ", "")
    return error_response(code, name, exc.description or name)
