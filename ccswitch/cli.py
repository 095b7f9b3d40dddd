"""Command line: ``ccswitch run|check|reload|report|export-cdr|purge|qa|user|keygen|decrypt|
verify`` and ``--version``."""

from __future__ import annotations

import argparse
import datetime
import os
import math
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Sequence, TextIO

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
    keygen = sub.add_parser(
        "keygen", help="make an X25519 key pair for sealed recordings: recordings.pub for "
                       "the nodes (recordings.encrypt.public_key), recordings.key (mode 0600) "
                       "for the reviewers; the private key does not belong on a node")
    keygen.add_argument("--out", required=True, type=Path, help="directory for the two files")
    decrypt = sub.add_parser(
        "decrypt", help="write a sealed recording to stdout: the WAV of a .wav.enc, the "
                        "compressed audio of a .mp3.enc or .ogg.enc")
    decrypt.add_argument("--key", required=True, type=Path, help="private key (ccswitch keygen)")
    decrypt.add_argument("recording", type=Path, help="the .wav.enc (or .mp3.enc...) file")
    verify = sub.add_parser(
        "verify", help="check the recordings ledger's hash chain and every recording file "
                       "against it; lists missing, changed and unledgered files")
    verify.add_argument("--config", required=True, type=Path, help="service config YAML")
    from ccswitch.qa.cli import add_parser

    add_parser(sub, _when)
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


def _exemplary(config: Config, err: TextIO) -> frozenset[str] | None:
    """The call ids whose recordings are kept as exemplary; None (after saying why) when
    the database cannot tell, so nothing is purged."""
    from ccswitch.qa.store import QaStore

    database = config.cdr.database
    if isinstance(database, Path) and not database.exists():
        return frozenset()  # no database yet: nothing can be marked
    try:
        store = QaStore(database)
        try:
            return store.exemplary_calls()
        finally:
            store.close()
    except CCSwitchError as e:
        err.write(f"error: cannot read the exemplary marks, nothing purged: {e}\n")
        return None


def _purge(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ccswitch.recording.retention import purge

    config = _load_config(args.config, err)
    if config is None:
        return EXIT_CONFIG
    keep = _exemplary(config, err)
    if keep is None:
        return EXIT_FAILURE
    directory = config.recordings.directory
    try:
        outcome = purge(directory, older_than_days=args.older_than, now=time.time(),
                        dry_run=args.dry_run, keep=keep)
    except CCSwitchError as e:
        err.write(f"error: {e}\n")
        return EXIT_FAILURE
    if args.dry_run:
        for call_id in outcome.deleted:
            out.write(f"{_printable(call_id)}\n")
    for call_id in outcome.exempt:
        out.write(f"kept {_printable(call_id)}: marked exemplary\n")
    for problem in outcome.errors:
        err.write(f"error: {_printable(problem)}\n")
    verb = "would purge" if args.dry_run else "purged"
    out.write(f"{verb} {len(outcome.deleted)} recording(s) older than {args.older_than:g} "
              f"days from {directory} ({outcome.bytes_freed} bytes), {outcome.kept} kept, "
              f"{len(outcome.errors)} error(s)\n")
    return EXIT_FAILURE if outcome.errors else EXIT_OK


PRIVATE_KEY_NAME = "recordings.key"
PUBLIC_KEY_NAME = "recordings.pub"


def _keygen(directory: Path, out: TextIO, err: TextIO) -> int:
    from ccswitch.recording.sealed import new_key_pair

    private, public = new_key_pair()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, body, mode in ((PRIVATE_KEY_NAME, private, 0o600),
                                 (PUBLIC_KEY_NAME, public, 0o644)):
            fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            try:
                os.fchmod(fd, mode)  # the umask must not widen or narrow it
                os.write(fd, body)
                os.fsync(fd)
            finally:
                os.close(fd)
    except FileExistsError as e:
        err.write(f"error: {e.filename} exists; keygen never overwrites a key\n")
        return EXIT_FAILURE
    except OSError as e:
        err.write(f"error: cannot write the keys in {directory}: {e.strerror}\n")
        return EXIT_FAILURE
    out.write(f"public key {directory / PUBLIC_KEY_NAME}: give it to the nodes "
              f"(recordings.encrypt.public_key)\n"
              f"private key {directory / PRIVATE_KEY_NAME} (mode 0600): keep it with the "
              f"reviewers, off the nodes; without it no sealed recording can be read\n")
    return EXIT_OK


def _decrypt(key_path: Path, recording: Path, out: BinaryIO, err: TextIO) -> int:
    from ccswitch.recording.recorder import BLOCK_ALIGN, HEADER_SIZE, _wav_header, sealed_wav
    from ccswitch.recording.sealed import SealedError, Status, Unsealed, load_private_key

    try:
        key = load_private_key(key_path.read_bytes())
    except OSError as e:
        err.write(f"error: cannot read the key {key_path}: {e.strerror}\n")
        return EXIT_FAILURE
    except SealedError as e:
        err.write(f"error: {key_path}: {e}\n")
        return EXIT_FAILURE
    written = 0
    try:
        with open(recording, "rb") as f:
            opened = Unsealed(key, f)
            # A sealed WAV's header gets its sizes; a compressed copy comes out as it was.
            wav = recording.name.endswith(".wav.enc")
            pieces = (sealed_wav(opened.chunks, opened.layout.plaintext_bytes) if wav
                      else opened.chunks)
            for piece in pieces:
                out.write(piece)
                written += len(piece)
        out.flush()
    except OSError as e:
        err.write(f"error: {recording}: {e.strerror}\n")
        return EXIT_FAILURE
    except SealedError as e:
        err.write(f"error: {recording}: {e}\n")
        return EXIT_FAILURE
    data = written - HEADER_SIZE
    kept = f"the first {data / BLOCK_ALIGN / 8000:.1f} s" if wav else f"{written} bytes"
    if opened.status is Status.INTERRUPTED:
        err.write(f"warning: {recording} was cut short: ccswitch stopped during the call and "
                  f"recovered {kept}\n")
        return EXIT_OK
    if opened.status is Status.TRUNCATED:
        if wav and data != opened.layout.plaintext_bytes - HEADER_SIZE and out.seekable():
            out.seek(0)  # a torn last chunk was not written: the header says what was
            out.write(_wav_header(data))
            out.flush()
        err.write(f"error: {recording} was cut short: it ends without its final chunk "
                  f"(truncated, torn by a crash, or its end changed); {kept} were "
                  f"written\n")
        return EXIT_FAILURE
    return EXIT_OK


def _verify(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ccswitch.recording.ledger import LEDGER_NAME, verify

    config = _load_config(args.config, err)
    if config is None:
        return EXIT_CONFIG
    directory = config.recordings.directory
    result = verify(directory)
    for problem in result.problems:
        out.write(f"{_printable(problem)}\n")
    out.write(f"{directory / LEDGER_NAME}: {result.entries} entries, {result.files} file(s) "
              f"checked, {len(result.problems)} problem(s)\n")
    return EXIT_FAILURE if result.problems else EXIT_OK


def _qa(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ccswitch.qa.cli import run

    config = _load_config(args.config, err)
    if config is None:
        return EXIT_CONFIG
    return run(args, config, out, err)


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
    if args.command == "qa":
        return _qa(args, sys.stdout, sys.stderr)
    if args.command == "keygen":
        return _keygen(args.out, sys.stdout, sys.stderr)
    if args.command == "decrypt":
        return _decrypt(args.key, args.recording, sys.stdout.buffer, sys.stderr)
    if args.command == "verify":
        return _verify(args, sys.stdout, sys.stderr)
    if args.command == "user":
        return _user(args, sys.stdout, sys.stderr)
    return _run(args.config, args.log_format, args.log_level)


if __name__ == "__main__":
    sys.exit(main())
