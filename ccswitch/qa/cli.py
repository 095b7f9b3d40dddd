"""``ccswitch qa ...``: the quality program's operator commands.

``samples`` lists flagged calls (filters as :meth:`QaStore.samples`), ``sample``
applies the sampling rules to stored calls of a time range (calls that ended while
the database was down; the seeded decision is the same as at call end),
``exemplary`` marks or clears a recording kept from the retention purge,
``calibration`` shows the spread of a calibration session and ``kpis`` the QA score
and repeat-caller rate per route and day or week.
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path
from typing import Any, Callable, TextIO

import attrs

from ccswitch.errors import CCSwitchError
from ccswitch.model import Config
from ccswitch.qa.kpi import PERIODS, load_qa_kpis
from ccswitch.qa.sampling import REASONS
from ccswitch.qa.store import QaStore, Sample

__all__ = ["add_parser", "run"]

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2


def add_parser(sub: Any, when: Callable[[str], int]) -> None:
    """Add ``qa`` and its subcommands; ``when`` parses an ISO time into epoch ms."""
    qa = sub.add_parser("qa", help="quality program: sampled calls, exemplary recordings, "
                                   "calibration, QA KPIs")
    qa_sub = qa.add_subparsers(dest="qa_command", required=True)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = qa_sub.add_parser(name, help=text)
        parser.add_argument("--config", required=True, type=Path, help="service config YAML")
        return parser

    samples = command("samples", "list the calls sampled for review")
    samples.add_argument("--since", type=when, help="first arrival included (ISO 8601)")
    samples.add_argument("--until", type=when, help="arrivals before this (ISO 8601)")
    samples.add_argument("--queue")
    samples.add_argument("--agent")
    samples.add_argument("--vendor")
    samples.add_argument("--reason", choices=REASONS)
    samples.add_argument("--min-score", type=float)
    samples.add_argument("--max-score", type=float)
    samples.add_argument("--exemplary", action="store_true",
                         help="only recordings marked exemplary (sampled or not)")
    samples.add_argument("--limit", type=int, default=1000)
    samples.add_argument("--format", choices=("text", "json"), default="text")
    sample = command("sample", "apply the sampling rules to the stored calls of a range "
                               "(calls that ended while the database was unreachable)")
    sample.add_argument("--since", type=when, required=True)
    sample.add_argument("--until", type=when)
    exemplary = command("exemplary", "keep a call's recording as exemplary: "
                                     "ccswitch purge skips it")
    exemplary.add_argument("call_id")
    exemplary.add_argument("--by", required=True, help="who marks it (kept with the flag)")
    exemplary.add_argument("--clear", action="store_true", help="take the mark back")
    calibration = command("calibration", "the spread of a calibration session's scores")
    calibration.add_argument("call_id")
    calibration.add_argument("session")
    kpis = command("kpis", "QA score and repeat-caller rate per route and period")
    kpis.add_argument("--since", type=when)
    kpis.add_argument("--until", type=when)
    kpis.add_argument("--period", choices=PERIODS, default="week")


def open_store(config: Config, err: TextIO) -> QaStore | None:
    """The QA store of the config's CDR database, or None after saying why not."""
    database = config.cdr.database
    if isinstance(database, Path) and not database.exists():
        err.write(f"error: no CDR database at {database} (no call has ended yet?)\n")
        return None
    try:
        return QaStore(database)
    except CCSwitchError as e:
        err.write(f"error: {e}\n")
        return None


def _iso(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc).isoformat(
        timespec="seconds")


def _sample_line(s: Sample) -> str:
    score = "-" if s.score is None else f"{s.score:g}"
    return (f"{s.call_id}\t{_iso(s.arrived_ms)}\t{s.queue}\t{s.vendor or s.route}\t"
            f"{s.agent_id or '-'}\t{s.reason or '-'}\t{score}\t"
            f"{'exemplary' if s.exemplary else '-'}\t{s.recording_path or '-'}\n")


def run(args: argparse.Namespace, config: Config, out: TextIO, err: TextIO) -> int:
    """Carry out ``ccswitch qa <command>`` on the config's database."""
    store = open_store(config, err)
    if store is None:
        return EXIT_CONFIG
    try:
        return _COMMANDS[args.qa_command](args, config, store, out, err)
    except CCSwitchError as e:
        err.write(f"error: {e}\n")
        return EXIT_FAILURE
    finally:
        store.close()


def _samples(args: argparse.Namespace, config: Config, store: QaStore, out: TextIO,
             err: TextIO) -> int:
    found = store.samples(since_ms=args.since, until_ms=args.until, queue=args.queue,
                          agent=args.agent, vendor=args.vendor, reason=args.reason,
                          min_score=args.min_score, max_score=args.max_score,
                          sampled=None if args.exemplary else True,
                          exemplary=True if args.exemplary else None, limit=args.limit)
    if args.format == "json":
        for s in found:
            out.write(json.dumps(attrs.asdict(s), sort_keys=True) + "\n")
    else:
        out.write("call_id\tarrived\tqueue\troute\tagent\treason\tscore\texemplary\trecording\n")
        for s in found:
            out.write(_sample_line(s))
    err.write(f"{len(found)} call(s)\n")
    return EXIT_OK


def _sample(args: argparse.Namespace, config: Config, store: QaStore, out: TextIO,
            err: TextIO) -> int:
    rules = None if config.dialplan.qa is None else config.dialplan.qa.sampling
    if rules is None:
        err.write("error: the dialplan has no qa.sampling rules\n")
        return EXIT_CONFIG
    checked = flagged = 0
    for row in store.rows(since_ms=args.since, until_ms=args.until):
        decision = store.sample_call(row.call_id, rules, now_ms=round(time.time() * 1000))
        checked += 1
        if decision is not None and decision.sampled:
            flagged += 1
    out.write(f"{checked} call(s) checked, {flagged} sampled\n")
    return EXIT_OK


def _exemplary(args: argparse.Namespace, config: Config, store: QaStore, out: TextIO,
               err: TextIO) -> int:
    store.set_exemplary(args.call_id, not args.clear, by=args.by,
                        now_ms=round(time.time() * 1000))
    verb = "no longer kept" if args.clear else "kept as exemplary"
    out.write(f"{args.call_id}: recording {verb}\n")
    return EXIT_OK


def _calibration(args: argparse.Namespace, config: Config, store: QaStore, out: TextIO,
                 err: TextIO) -> int:
    cal = store.calibration(args.call_id, args.session)
    if not cal.reviewers:
        err.write(f"error: no evaluations of {args.call_id} in session {args.session!r}\n")
        return EXIT_FAILURE
    out.write(json.dumps({"reviewers": list(cal.reviewers), "scores": dict(cal.scores),
                          "min": cal.minimum, "max": cal.maximum, "stdev": cal.stdev,
                          "disagreement": {q: dict(a) for q, a in cal.disagreement.items()}},
                         sort_keys=True, indent=2) + "\n")
    return EXIT_OK


def _kpis(args: argparse.Namespace, config: Config, store: QaStore, out: TextIO,
          err: TextIO) -> int:
    lines = load_qa_kpis(store, since_ms=args.since, until_ms=args.until, period=args.period)
    for line in lines:
        out.write(json.dumps(attrs.asdict(line), sort_keys=True) + "\n")
    return EXIT_OK


_COMMANDS = {"samples": _samples, "sample": _sample, "exemplary": _exemplary,
             "calibration": _calibration, "kpis": _kpis}
