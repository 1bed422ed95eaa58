"""Login with Amazon: the token endpoint, which trades the refresh token for an access token."""

from __future__ import annotations

import secrets
import time
from typing import Any

from flask import Blueprint, Response, request

from .web import current_state, json_response, same_secret

LWA_PATH = "/auth/o2/token"
TOKEN_LIFETIME_S = 3600.0

lwa = Blueprint("lwa", __name__)


@lwa.post(LWA_PATH, endpoint="lwaToken")
def lwa_token() -> Response:
    """POST /auth/o2/token (grant_type=refresh_token, form or JSON body)."""
    state = current_state()
    state.limiter.count_call("lwaToken")
    body = request.get_json(silent=True) if not request.form else None
    form: Any = request.form if request.form else (body if isinstance(body, dict) else {})
    grant_type = str(form.get("grant_type", ""))
    if not grant_type or not form.get("client_id") or not form.get("client_secret"):
        return json_response({"error": "invalid_request", "error_description": "Missing required parameter."}, 400)
    if grant_type != "refresh_token":
        return json_response(
            {"error": "unsupported_grant_type", "error_description": f"Unsupported grant_type: {grant_type}"}, 400
        )
    creds = state.credentials
    if not (
        same_secret(str(form.get("client_id")), creds.client_id)
        and same_secret(str(form.get("client_secret")), creds.client_secret)
    ):
        return json_response({"error": "invalid_client", "error_description": "Client authentication failed"}, 400)
    if state.injector.invalid_grant() or not same_secret(str(form.get("refresh_token", "")), creds.refresh_token):
        return json_response(
            {
                "error": "invalid_grant",
                "error_description": "The request has an invalid grant parameter : refresh_token",
            },
            400,
        )
    access_token = "Atza|" + secrets.token_urlsafe(96)
    with state.lock:
        state.access_tokens[access_token] = time.monotonic() + TOKEN_LIFETIME_S
        state.issued_tokens.append(access_token)
    state.injector.token_issued(access_token)
    return json_response(
        {
            "access_token": access_token,
            "refresh_token": creds.refresh_token,
            "token_type": "bearer",  # nosec B105 # the OAuth token type, not a password
            "expires_in": int(TOKEN_LIFETIME_S),
        }
    )
