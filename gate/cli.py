"""Command line of the gate: ``vaora-gate --config FILE`` runs it, ``vaora-gate check-config FILE`` validates.

Exit codes: 0 success, 2 invalid configuration (every problem printed to stderr as "key: message"),
3 hardware not usable at start-up (e.g. "pins.relay: GPIO17 is already in use").
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from protocols.logs import configure_logging

from .config import ConfigError, GateConfig, load_config

log = logging.getLogger(__name__)

EXIT_BAD_CONFIG = 2
EXIT_HARDWARE = 3


def _load_or_report(path: str) -> GateConfig | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"{path}: invalid configuration", file=sys.stderr)
        for error in exc.errors:
            print(error, file=sys.stderr)
        return None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for --help in docs and tests)."""
    parser = argparse.ArgumentParser(prog="vaora-gate", description="vaora gate controller")
    parser.add_argument("--config", "-c", metavar="FILE", help="per-gate TOML configuration")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR (default INFO)")
    sub = parser.add_subparsers(dest="command")
    check = sub.add_parser("check-config", help="validate a configuration file and print every error")
    check.add_argument("file", metavar="FILE")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``vaora-gate``; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "check-config":
        config = _load_or_report(args.file)
        if config is None:
            return EXIT_BAD_CONFIG
        print(f"OK: gate {config.gate.id} at site {config.gate.site}")
        return 0
    if not args.config:
        parser.error("--config FILE is required to run the gate")
    config = _load_or_report(args.config)
    if config is None:
        return EXIT_BAD_CONFIG
    configure_logging("gate", args.log_level)
    from .app import Gate
    from .turnstile import PinClaimError

    try:
        gate = Gate(config)
    except PinClaimError as exc:
        log.error("gate not started: %s", exc)
        print(f"{args.config}: cannot start the gate", file=sys.stderr)
        print(str(exc), file=sys.stderr)
        return EXIT_HARDWARE
    if config.gate.simulate:
        log.info("simulation: pins are gpiozero MockFactory pins")
    gate.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
