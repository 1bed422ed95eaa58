"""The Amazon Business side of a deployed stack, as the operator commands reach it: the product's own LWA token
provider and API client, pointed at the stack's endpoints, and what Amazon's refusals mean for an operator."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from abrecon._http import RetryPolicy
from abrecon.auth import LwaTokenProvider
from abrecon.client import AmazonBusinessClient
from abrecon.errors import AbreconError, ApiError, ConfigurationError
from abrecon_cli.deployed import DeployedStack

__all__ = ["LWA_FIELDS", "api_client", "explain", "missing_fields", "token_provider"]

LWA_FIELDS = ("client_id", "client_secret", "refresh_token")
# An operator is waiting at a prompt: a short budget, still retried once with jitter.
_RETRY = RetryPolicy(max_attempts=2, base_delay=0.5, max_delay=2.0)
_TIMEOUT_SECONDS = 10.0


def missing_fields(secret: Any) -> list[str]:
    """The LWA fields a secret's JSON lacks or leaves blank (every one of them if it is not an object)."""
    if not isinstance(secret, Mapping):
        return list(LWA_FIELDS)
    return [name for name in LWA_FIELDS if not isinstance(secret.get(name), str) or not secret[name].strip()]


def token_provider(stack: DeployedStack, credentials: Mapping[str, str]) -> LwaTokenProvider:
    """The product's LWA token provider for these credentials, at the stack's LWA endpoint (read nowhere else)."""
    return LwaTokenProvider(
        stack.output("LwaSecretArn"),
        stack.output("LwaEndpoint"),
        timeout=_TIMEOUT_SECONDS,
        secret_loader=lambda _secret_id: credentials,
        retry=_RETRY,
    )


def api_client(stack: DeployedStack, tokens: LwaTokenProvider) -> AmazonBusinessClient:
    """The product's Amazon Business client at the stack's API endpoint, with the operator's short budget."""
    return AmazonBusinessClient(
        stack.output("AmazonBusinessApiEndpoint"), tokens, timeout=(5.0, _TIMEOUT_SECONDS), retry=_RETRY
    )


def explain(exc: AbreconError) -> str:
    """What an error of the token exchange or of an API call means, and what to do about it (never a value)."""
    if isinstance(exc, ConfigurationError):
        return f"{exc}: fix the stack's endpoint parameters (sam deploy --parameter-overrides ...)"
    if not isinstance(exc, ApiError):
        return str(exc)
    if exc.operation == "lwaToken":
        return _explain_lwa(exc)
    return _explain_api(exc)


def _explain_lwa(exc: ApiError) -> str:
    """What LWA's refusal of the token exchange means."""
    if exc.code == "invalid_grant":
        return (
            "LWA answered invalid_grant: the refresh token was revoked (or is another region's or app's), or LWA "
            "had a transient outage. Try again in a few minutes; if it persists, authorize the app again and "
            "store the new refresh token with `abrecon credentials set`"
        )
    if exc.code in ("invalid_client", "unauthorized_client"):
        return (
            f"LWA answered {exc.code}: the client id or client secret is wrong (the client secret must be "
            "rotated every 180 days); store the current ones with `abrecon credentials set`"
        )
    if exc.status is None or exc.status >= 500 or exc.status == 429:
        return f"{exc}: LWA could not be reached or is failing; try again in a few minutes"
    return f"{exc}: check the credentials and store them again with `abrecon credentials set`"


def _explain_api(exc: ApiError) -> str:
    """What the Amazon Business API's refusal of a call means."""
    if exc.status == 403:
        return (
            f"{exc}: the app lacks the Business Purchase Reconciliation role; grant it to the app in the Amazon "
            "Business developer console, authorize again and store the new refresh token (`abrecon credentials set`)"
        )
    if exc.status == 401:
        return (
            f"{exc}: Amazon refused a fresh access token; the refresh token is probably another region's "
            "(tokens are per region: check AmazonBusinessRegion) or another app's"
        )
    if exc.status == 429:
        return f"{exc}: throttled, probably by a run sharing the quota; try again later"
    if exc.status is None or exc.status >= 500:
        return f"{exc}: Amazon's side is failing or unreachable; try again later"
    return str(exc)
