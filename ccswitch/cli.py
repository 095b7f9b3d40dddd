"""Command line: ``ccswitch run``, ``ccswitch check``, ``ccswitch --version``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence, TextIO

from twisted.logger import (
    FilteringLogObserver, ILogObserver, LogLevel, LogLevelFilterPredicate,
    globalLogBeginner, jsonFileLogObserver, textFileLogObserver,
)

from ccswitch import __version__
from ccswitch.errors import CCSwitchError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ccswitch", description="SIP call routing and recording for contact centres.")
    parser.add_argument("--version", action="version", version=f"ccswitch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the service in the foreground")
    run.add_argument("--config", required=True, type=Path, help="service config YAML")
    run.add_argument("--log-format", choices=("text", "json"), default="text")
    run.add_argument("--log-level", choices=("debug", "info", "warn", "error"), default="info")
    check = sub.add_parser("check", help="validate the config and every dialplan, then exit")
    check.add_argument("--config", required=True, type=Path, help="service config YAML")
    return parser


def _check(path: Path, out: TextIO) -> int:
    from ccswitch.config import check_config

    result = check_config(path)
    for warning in result.warnings:
        out.write(f"warning: {warning}\n")
    for error in result.errors:
        out.write(f"error: {error}\n")
    if result.errors or result.config is None:
        out.write(f"{path}: {len(result.errors)} error(s)\n")
        return EXIT_CONFIG
    config = result.config
    out.write(f"{path}: OK ({len(config.dialplan.queues)} queue(s), "
              f"{len(config.dialplan.agents)} agent(s), {len(config.dialplan.routes)} route(s))\n")
    return EXIT_OK


def _start_logging(fmt: str, level: str) -> None:
    observer: ILogObserver = (jsonFileLogObserver(sys.stdout) if fmt == "json"
                              else textFileLogObserver(sys.stdout))
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(level))
    globalLogBeginner.beginLoggingTo([FilteringLogObserver(observer, [predicate])],
                                     redirectStandardIO=False)


def _run(path: Path, log_format: str, log_level: str) -> int:
    from ccswitch.config import check_config

    result = check_config(path)
    if result.errors or result.config is None:
        for error in result.errors:
            sys.stderr.write(f"error: {error}\n")
        return EXIT_CONFIG
    for warning in result.warnings:
        sys.stderr.write(f"warning: {warning}\n")
    _start_logging(log_format, log_level)
    from twisted.internet import reactor

    from ccswitch.service import start_node

    try:
        node = start_node(result.config, reactor)
    except (CCSwitchError, OSError) as e:
        sys.stderr.write(f"ccswitch: cannot start: {e}\n")
        return EXIT_FAILURE
    reactor.addSystemEventTrigger("before", "shutdown", node.stop)
    reactor.run()
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check":
        return _check(args.config, sys.stdout)
    return _run(args.config, args.log_format, args.log_level)


if __name__ == "__main__":
    sys.exit(main())
