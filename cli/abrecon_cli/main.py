"""The `abrecon` command."""

from __future__ import annotations

import argparse
import sys
import textwrap
from datetime import datetime
from pathlib import Path

from abrecon_cli import ops


def _sandbox_run(args: argparse.Namespace) -> int:
    # The sandbox (moto, the emulator) is a development dependency: import it only when asked for.
    from abrecon.errors import ConfigurationError
    from abrecon_sandbox.aws.stack import TemplateError
    from abrecon_sandbox.run.options import SandboxOptions, lwa_credentials_from
    from abrecon_sandbox.run.orchestration import SandboxRun, rerun_sandbox, run_sandbox

    try:
        credentials = None
        if args.api_endpoint:
            credentials = lwa_credentials_from(args.lwa_client_id, args.lwa_client_secret, args.lwa_refresh_token)
        options = SandboxOptions(
            seed=args.seed,
            orders=args.orders,
            # Another endpoint is paced and polled as Amazon is, unless told otherwise.
            speed=args.speed if args.speed is not None else (1.0 if args.api_endpoint else 60.0),
            poll_seconds=args.poll_seconds,
            summary_file=args.summary,
            region=args.region,
            jp_inconsistent_invoices=args.jp_inconsistent,
            faults=args.faults,
            max_polls=args.max_polls,
            api_endpoint=args.api_endpoint,
            lwa_endpoint=args.lwa_endpoint,
            lwa_credentials=credentials,
            window_from=args.window_from,
            window_to=args.window_to,
            export_dir=args.export,
        )
        if not args.rerun:
            return run_sandbox(options)
        kept: list[SandboxRun] = []
        first = run_sandbox(options, keep=kept)
        try:
            print("\nre-run: a second execution for the same window on the same sandbox", flush=True)
            return max(first, rerun_sandbox(kept[0], options=options))
        finally:
            kept[0].aws.stop()
            if kept[0].emulator:
                kept[0].emulator.stop()
    except (ConfigurationError, TemplateError) as exc:  # TemplateError: a parameter CloudFormation would refuse
        print(f"abrecon sandbox run: error: {exc}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    """The command line: `abrecon sandbox run [...]`, and start/watch/invoices for a deployed stack."""
    parser = argparse.ArgumentParser(prog="abrecon", description="Amazon Business invoices into your books.")
    commands = parser.add_subparsers(dest="command", required=True)
    sandbox = commands.add_parser("sandbox", help="the whole pipeline on this machine (moto + emulator)")
    sandbox_commands = sandbox.add_subparsers(dest="sandbox_command", required=True)
    run = sandbox_commands.add_parser(
        "run", help="run one execution end to end and print its summary", formatter_class=_SandboxRunHelp
    )
    run.add_argument("--seed", type=int, default=7, help="data set seed (default 7)")
    run.add_argument("--orders", type=_positive, default=30, help="orders in the data set (default 30)")
    run.add_argument(
        "--speed",
        type=float,
        default=None,
        help="divide the emulator's durations (report latency, URL lifetime, rate-limit refill) "
        "and the poll interval by this factor (default 60; 1 with --api-endpoint)",
    )
    run.add_argument(
        "--poll-seconds",
        type=_positive,
        default=None,
        help="seconds between getReport polls (default: 15 divided by --speed, at least 1)",
    )
    run.add_argument(
        "--max-polls",
        type=_positive,
        default=None,
        help="getReport polls per report before the invoice is deferred to the next run (default: MaxPolls, 240)",
    )
    run.add_argument(
        "--faults",
        default="none",
        metavar="PROFILE",
        help="inject one fault profile: Amazon's side (the built-in emulator) or AWS's (the sandbox). The run "
        "exits 0 only if every line item is accounted for, nothing is duplicated, every object is under the "
        "stack's key, no log line carries a secret and nothing was written to disk. Profiles:",
    )
    run.add_argument(
        "--rerun",
        action="store_true",
        help="then start a second execution for the same window on the same sandbox (ledger, bucket, emulator "
        "kept, an AWS-side outage over): what the next run picks up; --summary then holds the second run's",
    )
    run.add_argument("--summary", type=Path, default=None, help="write the run's summary JSON here")
    run.add_argument(
        "--export",
        type=Path,
        default=None,
        metavar="DIR",
        help="copy the run's reconciliation report (CSV, HTML) and its PDFs into DIR, in the bucket's layout",
    )
    run.add_argument(
        "--region",
        choices=("NA", "EU", "JP"),
        default="NA",
        help="Amazon Business region: the template's AmazonBusinessRegion and the emulator's data set "
        "(NA or JP; EU only with --api-endpoint). JP invoices get the tax-qualified invoice checks",
    )
    run.add_argument(
        "--jp-inconsistent",
        type=_not_negative,
        default=0,
        help="JP only: invoices the emulator breaks on purpose, for the checks to flag (default 0)",
    )
    other = run.add_argument_group(
        "another endpoint",
        "run against another Amazon Business endpoint (Amazon's sandbox, your own mock) instead of the built-in "
        "emulator; AWS stays local. Plain http only for loopback addresses. Credentials: flags, else the "
        "ABRECON_LWA_CLIENT_ID, ABRECON_LWA_CLIENT_SECRET and ABRECON_LWA_REFRESH_TOKEN variables (prefer these: "
        "flags show in the process list)",
    )
    other.add_argument("--api-endpoint", metavar="URL", default=None, help="the Amazon Business API host")
    other.add_argument("--lwa-endpoint", metavar="URL", default=None, help="LWA token endpoint (default Amazon's)")
    other.add_argument("--lwa-client-id", default=None)
    other.add_argument("--lwa-client-secret", default=None)
    other.add_argument("--lwa-refresh-token", default=None)
    other.add_argument(
        "--from", dest="window_from", type=_datetime, default=None, help="window start, ISO 8601 (UTC if no offset)"
    )
    other.add_argument(
        "--to",
        dest="window_to",
        type=_datetime,
        default=None,
        help="window end; without --from/--to: the last LookbackDays days",
    )
    run.set_defaults(func=_sandbox_run)
    ops.add_commands(commands)  # start, watch, invoices, doctor, credentials: for a deployed stack
    return parser


class _SandboxRunHelp(argparse.HelpFormatter):
    """`abrecon sandbox run --help`: lists the fault profiles, read from the sandbox only when help is shown (the
    sandbox is a development dependency the operator commands do without)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action)
        if "--faults" not in action.option_strings:
            return text
        try:
            from abrecon_sandbox.aws.faults import all_fault_profiles
        except ImportError:  # no sandbox installed: nothing to list
            return text
        profiles = "".join(f"\n{name}: {about}" for name, about in all_fault_profiles().items())
        return (text or "") + profiles.replace("%", "%%")

    def _split_lines(self, text: str, width: int) -> list[str]:
        """Each line of a help text wrapped on its own (the profile list is one line per profile)."""
        return [wrapped for line in text.splitlines() for wrapped in textwrap.wrap(line, width) or [""]]


def _not_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _datetime(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date or time: {text!r}") from None


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
