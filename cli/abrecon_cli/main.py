"""The `abrecon` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _sandbox_run(args: argparse.Namespace) -> int:
    # The sandbox (moto, the emulator) is a development dependency: import it only when asked for.
    from abrecon_sandbox.run import SandboxOptions, run_sandbox

    options = SandboxOptions(
        seed=args.seed, orders=args.orders, speed=args.speed, poll_seconds=args.poll_seconds, summary_file=args.summary
    )
    return run_sandbox(options)


def build_parser() -> argparse.ArgumentParser:
    """The command line: `abrecon sandbox run [...]`."""
    parser = argparse.ArgumentParser(prog="abrecon", description="Amazon Business invoices into your books.")
    commands = parser.add_subparsers(dest="command", required=True)
    sandbox = commands.add_parser("sandbox", help="the whole pipeline on this machine (moto + emulator)")
    sandbox_commands = sandbox.add_subparsers(dest="sandbox_command", required=True)
    run = sandbox_commands.add_parser("run", help="run one execution end to end and print its summary")
    run.add_argument("--seed", type=int, default=7, help="data set seed (default 7)")
    run.add_argument("--orders", type=_positive, default=30, help="orders in the data set (default 30)")
    run.add_argument(
        "--speed",
        type=float,
        default=60.0,
        help="divide the emulator's durations (report latency, URL lifetime, rate-limit refill) "
        "and the poll interval by this factor (default 60)",
    )
    run.add_argument(
        "--poll-seconds",
        type=_positive,
        default=None,
        help="seconds between getReport polls (default: 15 divided by --speed, at least 1)",
    )
    run.add_argument("--summary", type=Path, default=None, help="write the run's summary JSON here")
    run.set_defaults(func=_sandbox_run)
    return parser


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
