"""What every API of the emulator's app shares: the state of the app serving the request, and the JSON answers."""

from __future__ import annotations

import hmac
import json
from typing import TYPE_CHECKING, Any, cast

from flask import Response, current_app

if TYPE_CHECKING:
    from .state import ServerState

STATE_KEY = "abrecon.state"  # where create_app keeps the ServerState, in the app's extensions


def current_state() -> ServerState:
    """The ServerState of the app serving the request."""
    return cast("ServerState", current_app.extensions[STATE_KEY])


def json_response(body: Any, status: int = 200) -> Response:
    """body as a JSON answer."""
    return Response(json.dumps(body), status=status, mimetype="application/json")


def error_response(status: int, code: str, message: str, details: str | None = None) -> Response:
    """The Amazon Business APIs' error shape: {"errors": [{code, message, details?}]}."""
    error: dict[str, str] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return json_response({"errors": [error]}, status)


def same_secret(given: str, expected: str) -> bool:
    """given == expected, in constant time (credentials, URL signatures)."""
    return hmac.compare_digest(given.encode(), expected.encode())
