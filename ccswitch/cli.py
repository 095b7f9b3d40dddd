"""Command line: ``ccswitch run|check|reload|report|export-cdr|purge|user`` and
``--version``."""

from __future__ import annotations

import argparse
import datetime
import os
import math
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence, TextIO

from twisted.logger import (
    FilteringLogObserver, ILogObserver, LogLevel, LogLevelFilterPredicate,
    globalLogBeginner, jsonFileLogObserver, textFileLogObserver,
)

from ccswitch import __version__
from ccswitch.cdr.store import CdrRow, CdrStore
from ccswitch.errors import CCSwitchError

if TYPE_CHECKING:
    from ccswitch.model import Config

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
    report = sub.add_parser("report", help="KPI report per queue, route and period from the CDRs")
    report.add_argument("--config", required=True, type=Path, help="service config YAML")
    report.add_argument("--period", choices=("hour", "day"), default="hour")
    report.add_argument("--format", choices=("text", "csv", "json"), default="text")
    report.add_argument("--since", type=_when, help="first arrival included (ISO 8601; UTC "
                        "unless it has an offset)")
    report.add_argument("--until", type=_when, help="arrivals before this (ISO 8601)")
    report.add_argument("--sl-threshold", type=float, default=20.0,
                        help="service-level threshold, seconds of queue wait (default 20)")
    report.add_argument("--tz", default="UTC", help="time zone of the periods (default UTC)")
    drawn = report.add_mutually_exclusive_group()
    drawn.add_argument("--chart", type=Path,
                       help="also draw ASA and service level per period into this PNG")
    drawn.add_argument("--shares", action="store_true",
                       help="instead of the KPIs: each share rule's achieved split of the "
                            "queue's calls against its target, per period")
    export = sub.add_parser("export-cdr", help="write the call detail records as JSON lines")
    export.add_argument("--config", required=True, type=Path, help="service config YAML")
    export.add_argument("--since", type=_when)
    export.add_argument("--until", type=_when)
    reload = sub.add_parser(
        "reload", help="validate the config, then tell the running ccswitch to reload it "
                       "(SIGHUP); nothing is signalled if the config is invalid")
    reload.add_argument("--config", required=True, type=Path, help="service config YAML")
    reload.add_argument("--pid", required=True, type=int, help="process id of ccswitch run")
    purge = sub.add_parser(
        "purge", help="delete recordings (WAV, sidecar, compressed copies) of calls that "
                      "arrived more than --older-than days ago; each deletion is logged to "
                      "purge.log in the recordings directory")
    purge.add_argument("--config", required=True, type=Path, help="service config YAML")
    purge.add_argument("--older-than", required=True, type=_days, metavar="DAYS",
                       help="retention period in days (may be fractional)")
    purge.add_argument("--dry-run", action="store_true",
                       help="delete nothing; list the call ids that would go")
    user = sub.add_parser("user", help="portal users in the CDR database: add, passwd, "
                                       "remove, list")
    user.add_argument("action", choices=("add", "passwd", "remove", "list"))
    user.add_argument("name", nargs="?", help="user name (not for list)")
    user.add_argument("--config", required=True, type=Path, help="service config YAML")
    user.add_argument("--role", choices=("admin", "supervisor", "qa_reviewer",
                                         "vendor_reviewer"), help="for add")
    user.add_argument("--vendor", help="for add with --role vendor_reviewer: the one vendor "
                                       "whose calls the user sees")
    user.add_argument("--password-stdin", action="store_true",
                      help="read the password from the first line of standard input "
                           "instead of prompting twice")
    return parser


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def _user(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ccswitch.portal.users import UserError, UserStore

    config = _load_config(args.config, err)
    if config is None:
        return EXIT_CONFIG
    if args.action != "list" and not args.name:
        err.write(f"error: user {args.action} needs a user name\n")
        return EXIT_FAILURE
    if args.action == "add" and not args.role:
        err.write("error: user add needs --role\n")
        return EXIT_FAILURE
    try:
        store = UserStore(config.cdr.database, _WallClock())
    except CCSwitchError as e:
        err.write(f"error: {e}\n")
        return EXIT_FAILURE
    try:
        if args.action == "list":
            for u in store.list():
                out.write(f"{u.username}\t{u.role.value}\t{u.vendor or '-'}\n")
        elif args.action == "remove":
            store.remove(args.name)
            out.write(f"user {args.name} removed\n")
        elif args.action == "add":
            store.add(args.name, _password(args), args.role, args.vendor)
            out.write(f"user {args.name} added as {args.role}\n")
        else:
            store.set_password(args.name, _password(args))
            out.write(f"password of {args.name} changed\n")
    except (UserError, ValueError) as e:
        err.write(f"error: {e}\n")
        return EXIT_FAILURE
    finally:
        store.close()
    return EXIT_OK


class _WallClock:
    def seconds(self) -> float:
        return time.time()


def _days(text: str) -> float:
    """A positive, finite number of days."""
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {text!r}") from None
    if not (math.isfinite(days) and days > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of days: {text!r}")
    return days


def _when(text: str) -> int:
    """An ISO-8601 time as epoch milliseconds (UTC unless it carries an offset)."""
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return round(moment.timestamp() * 1000)


def _load_config(path: Path, out: TextIO) -> Config | None:
    """The config at ``path``, or None after writing its errors to ``out``."""
    from ccswitch.config import check_config

    result = check_config(path)
    if result.errors or result.config is None:
        for error in result.errors:
            out.write(f"error: {error}\n")
        return None
    return result.config


def _open_store(path: Path, out: TextIO) -> CdrStore | None:
    config = _load_config(path, out)
    if config is None:
        return None
    database = config.cdr.database
    if isinstance(database, Path) and not database.exists():
        out.write(f"error: no CDR database at {database} (no call has ended yet?)\n")
        return None
    try:
        return CdrStore(database)
    except CCSwitchError as e:
        out.write(f"error: {e}\n")
        return None


def _report(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ccswitch.cdr.report import FORMATS, REPEAT_WINDOW_MS, build_report

    store = _open_store(args.config, err)
    if store is None:
        return EXIT_CONFIG
    # Rows from a day before --since are read only as history for the repeat-caller rate.
    history_from = None if args.since is None else args.since - REPEAT_WINDOW_MS
    try:
        rows = list(store.rows(since_ms=history_from, until_ms=args.until))
    finally:
        store.close()
    if args.shares:
        return _share_report(args, rows, out, err)
    try:
        report = build_report(rows, period=args.period, sl_threshold=args.sl_threshold,
                              tz=args.tz, since_ms=args.since)
    except (ValueError, LookupError) as e:  # ZoneInfoNotFoundError is a LookupError
        err.write(f"error: {e}\n")
        return EXIT_CONFIG
    out.write(FORMATS[args.format](report))
    if args.chart is not None:
        from ccswitch.cdr.chart import write_chart

        try:
            write_chart(report, args.chart)
        except CCSwitchError as e:
            err.write(f"error: {e}\n")
            return EXIT_FAILURE
        err.write(f"chart written to {args.chart}\n")
    return EXIT_OK


def _share_report(args: argparse.Namespace, rows: list[CdrRow], out: TextIO,
                  err: TextIO) -> int:
    """``report --shares``: the targets are the share rules of the dialplan in the config."""
    from ccswitch.cdr.report import SHARE_FORMATS, build_share_report, share_targets

    config = _load_config(args.config, err)
    if config is None:
        return EXIT_CONFIG
    try:
        lines = build_share_report(rows, share_targets(config.dialplan), period=args.period,
                                   tz=args.tz, since_ms=args.since)
    except (ValueError, LookupError) as e:
        err.write(f"error: {e}\n")
        return EXIT_CONFIG
    out.write(SHARE_FORMATS[args.format](lines, args.period, args.tz))
    return EXIT_OK


def _export(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    store = _open_store(args.config, err)
    if store is None:
        return EXIT_CONFIG
    try:
        count = store.export_jsonl(out, since_ms=args.since, until_ms=args.until)
    finally:
        store.close()
    err.write(f"{count} record(s)\n")
    return EXIT_OK


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


def _printable(text: str) -> str:
    """``text`` with control and other non-printable characters escaped (ids come from
    sidecars, which hold values from the network)."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _purge(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ccswitch.recording.retention import purge

    config = _load_config(args.config, err)
    if config is None:
        return EXIT_CONFIG
    directory = config.recordings.directory
    try:
        outcome = purge(directory, older_than_days=args.older_than, now=time.time(),
                        dry_run=args.dry_run)
    except CCSwitchError as e:
        err.write(f"error: {e}\n")
        return EXIT_FAILURE
    if args.dry_run:
        for call_id in outcome.deleted:
            out.write(f"{_printable(call_id)}\n")
    for problem in outcome.errors:
        err.write(f"error: {_printable(problem)}\n")
    verb = "would purge" if args.dry_run else "purged"
    out.write(f"{verb} {len(outcome.deleted)} recording(s) older than {args.older_than:g} "
              f"days from {directory} ({outcome.bytes_freed} bytes), {outcome.kept} kept, "
              f"{len(outcome.errors)} error(s)\n")
    return EXIT_FAILURE if outcome.errors else EXIT_OK


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
    from twisted.internet.interfaces import IReactorThreads

    from ccswitch.service import start_node

    try:
        node = start_node(result.config, reactor)
    except (CCSwitchError, OSError) as e:
        sys.stderr.write(f"ccswitch: cannot start: {e}\n")
        return EXIT_FAILURE
    reactor.addSystemEventTrigger("before", "shutdown", node.stop)

    threads = IReactorThreads(reactor)

    def on_sighup(signum: int, frame: object) -> None:
        # A signal handler may run between any two bytecodes: hand over to the reactor.
        threads.callFromThread(node.reload, path)

    signal.signal(signal.SIGHUP, on_sighup)
    reactor.run()
    return EXIT_OK


def _reload(path: Path, pid: int, out: TextIO) -> int:
    code = _check(path, out)
    if code != EXIT_OK:
        out.write("not reloaded: the running config stays in force\n")
        return code
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as e:
        out.write(f"cannot signal ccswitch (pid {pid}): {e.strerror}\n")
        return EXIT_FAILURE
    out.write(f"reload requested (SIGHUP to pid {pid}); its log says when it is in force\n")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check":
        return _check(args.config, sys.stdout)
    if args.command == "report":
        return _report(args, sys.stdout, sys.stderr)
    if args.command == "export-cdr":
        return _export(args, sys.stdout, sys.stderr)
    if args.command == "reload":
        return _reload(args.config, args.pid, sys.stdout)
    if args.command == "purge":
        return _purge(args, sys.stdout, sys.stderr)
    if args.command == "user":
        return _user(args, sys.stdout, sys.stderr)
    return _run(args.config, args.log_format, args.log_level)


if __name__ == "__main__":
    sys.exit(main())
