"""What `abrecon sandbox run` takes (SandboxOptions), checked before anything starts, and the stack parameters
derived from it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from abrecon._http import require_secure_url
from abrecon.errors import ConfigurationError
from abrecon.pacing import parse_limits
from abrecon_sandbox.aws.faults import all_fault_profiles
from abrecon_sandbox.aws.stack import load_template

PROJECT_ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = PROJECT_ROOT / "template.yaml"
AMAZON_POLL_SECONDS = 15
AMAZON_FATAL_RETRY_SECONDS = 300  # the template's FatalRetrySeconds default
# Where `--api-endpoint` runs take the LWA credentials from when no flag gives them.
LWA_CREDENTIAL_ENV = {  # nosec B105 # names of environment variables, not their values
    "client_id": "ABRECON_LWA_CLIENT_ID",
    "client_secret": "ABRECON_LWA_CLIENT_SECRET",
    "refresh_token": "ABRECON_LWA_REFRESH_TOKEN",
}


def scaled_rate_limits(speed: float) -> str:
    """The template's ApiRateLimits with every rate multiplied by speed, matching the emulator's sped-up buckets."""
    default = str(load_template(TEMPLATE)["Parameters"]["ApiRateLimits"]["Default"])
    return ",".join(f"{op}={limit.rate * speed:g}/{limit.burst}" for op, limit in parse_limits(default).items())


class SandboxError(Exception):
    """The sandbox could not run the pipeline to an end."""


@dataclass(frozen=True)
class SandboxOptions:
    """What `abrecon sandbox run` takes."""

    seed: int = 7
    orders: int = 30
    speed: float = 60.0
    poll_seconds: int | None = None
    summary_file: Path | None = None
    deadline_seconds: float = 900.0
    log_dir: Path = field(default_factory=lambda: PROJECT_ROOT / ".sandbox" / "logs")
    region: str = "NA"  # the template's AmazonBusinessRegion; the built-in emulator has NA and JP data
    jp_inconsistent_invoices: int = 0  # JP: invoices the emulator breaks on purpose (the checks must flag them)
    faults: str = "none"  # a fault profile: the built-in emulator's, or the sandbox's AWS-side ones (aws_faults.py)
    max_polls: int | None = None  # the template's MaxPolls (default 240): fewer defers stuck reports sooner
    # Another Amazon Business endpoint (Amazon's sandbox, someone's mock) instead of the built-in emulator;
    # then the LWA credentials come from lwa_credentials (see lwa_credentials_from) and the window from window_*.
    api_endpoint: str | None = None
    lwa_endpoint: str | None = None
    lwa_credentials: Mapping[str, str] | None = field(default=None, repr=False)
    window_from: datetime | None = None
    window_to: datetime | None = None
    export_dir: Path | None = None  # the run's report (CSV, HTML) and PDFs, copied here in the bucket's layout
    max_items_per_order: int = 4  # the built-in emulator's data set: 1 to this many line items an order

    @property
    def effective_poll_seconds(self) -> int:
        """Amazon's 15 s poll interval divided by the speed factor (Wait states take whole seconds)."""
        return self.poll_seconds or max(1, round(AMAZON_POLL_SECONDS / self.speed))

    @property
    def fatal_retry_seconds(self) -> int:
        """The cool-down before the one new report after a FATAL, divided by the speed factor."""
        return max(1, round(AMAZON_FATAL_RETRY_SECONDS / self.speed))


def lwa_credentials_from(
    client_id: str | None = None,
    client_secret: str | None = None,
    refresh_token: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> dict[str, str]:
    """The LWA credentials for an `--api-endpoint` run: each from its flag, else its ABRECON_LWA_* variable.

    A missing one is a ConfigurationError naming the flag and the variable, never a value.
    """
    given = {"client_id": client_id, "client_secret": client_secret, "refresh_token": refresh_token}
    found = {key: value or environ.get(LWA_CREDENTIAL_ENV[key], "") for key, value in given.items()}
    missing = [key for key, value in found.items() if not value]
    if missing:
        names = ", ".join(f"--lwa-{key.replace('_', '-')} or {LWA_CREDENTIAL_ENV[key]}" for key in missing)
        raise ConfigurationError(f"LWA credentials missing for --api-endpoint: {names}")
    return found


def check_endpoint_options(options: SandboxOptions) -> None:
    """Refuse a run against another endpoint that cannot work, before anything starts."""
    if options.faults not in all_fault_profiles():
        raise ConfigurationError(f"unknown fault profile {options.faults!r}; known: {', '.join(all_fault_profiles())}")
    if options.api_endpoint is not None and options.faults != "none":
        raise ConfigurationError("--faults needs the built-in emulator (not --api-endpoint)")
    if options.api_endpoint is None:
        if options.lwa_endpoint or options.lwa_credentials:
            raise ConfigurationError("--lwa-endpoint and LWA credentials go with --api-endpoint")
        return
    # Plain http only for loopback addresses (someone's own mock on this machine): the client's own rule.
    require_secure_url(options.api_endpoint, "--api-endpoint")
    if options.lwa_endpoint:
        require_secure_url(options.lwa_endpoint, "--lwa-endpoint")
    if not options.lwa_credentials:
        raise ConfigurationError("--api-endpoint needs LWA credentials (flags or ABRECON_LWA_* variables)")
    if (options.window_from is None) != (options.window_to is None):
        raise ConfigurationError("give both --from and --to, or neither (the last LookbackDays days)")
