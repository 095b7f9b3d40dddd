#!/usr/bin/env python3
"""Soak: one ccswitch node under steady call churn for a long time, checked for leaks.

One ccswitch process (embedded state, or ``--state redis`` with a redis-server this
script starts on a free port) gets ``--calls`` concurrent calls on 127.0.0.1 for
``--minutes``: four SIPp callers keep calls of different lengths coming and going
(STREAMS below), one of them hanging up during the QA notice (short abandons), and one
SIPp agent answers and echoes RTP for every agent of the queue. Every ``--sample``
seconds the script records ccswitch's RSS, open fds, UDP sockets (its SIP port and
one per RTP port in use) and, with Redis, the number of keys; finished recordings
are deleted as they come so the disk does not fill.

After the run it checks:
- the call records: one CDR row per call SIPp placed, matched by SIP Call-ID, with
  the outcome its stream implies (answered_inhouse, or short_abandon), none failed;
- flatness: after the warm-up (a fifth of the run, at least a minute or half a
  short run) the median of the last quarter of the samples is within TOLERANCE of
  the median of the first quarter, for RSS, fds, UDP sockets and Redis keys;
- clean-up: once the calls are over, no call is active and the UDP sockets are back
  to their count before the first call.
It prints a table and exits 1 when a check fails.

    make soak                                   # 30 minutes at 100 calls, embedded state
    make soak SOAK_MINUTES=2 SOAK_CALLS=20 SOAK_STATE=redis
    .venv/bin/python bench/soak.py --minutes 2 --calls 20

Every process is bounded in time (the run, the longest call, and two minutes) and
stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

from common import Node, active_calls, machine, open_fds, plan, rss_mib, sipp_counts, udp_sockets
from tests.phones.client import Sipp, free_udp_port, write_ulaw_tone
from tests.redisd import RedisServer


class Stream(NamedTuple):
    """One SIPp caller: its share of the concurrent calls and how long each call lasts."""

    name: str
    scenario: str
    share: float
    hold: float  # seconds from ccswitch's answer to the caller's BYE
    outcome: str  # what every one of its calls must end as in the CDR


# The QA notice lasts about 4 s: the abandoning callers hang up during it, within the
# queue's short_abandon threshold (5 s); the others reach an agent and talk.
STREAMS = (
    Stream("short", "uac_call.xml", 0.4, 8.0, "answered_inhouse"),
    Stream("medium", "uac_call.xml", 0.3, 20.0, "answered_inhouse"),
    Stream("long", "uac_call.xml", 0.2, 60.0, "answered_inhouse"),
    Stream("abandon", "uac_abandon.xml", 0.1, 2.0, "short_abandon"),
)

# Allowed growth, last-quarter median over first-quarter median: relative, plus an
# absolute slack for small counts (a few calls more or less in progress at a sample).
TOLERANCE: dict[str, tuple[float, float]] = {
    "rss_mib": (0.10, 2.0),
    "fds": (0.10, 5.0),
    "udp_sockets": (0.10, 5.0),
    "redis_keys": (0.10, 5.0),
}


def start_callers(node: Node, workdir: Path, calls: int, seconds: float) -> list[
        tuple[Stream, Sipp]]:
    """One SIPp per stream: up to its share of ``calls`` at once, a new call as soon as
    one ends, for ``seconds``."""
    callers = []
    for stream in STREAMS:
        limit = max(1, round(calls * stream.share))
        rate = limit / (stream.hold + 1.0)  # calls/s that keep ``limit`` calls up
        total = max(1, int(rate * seconds))
        sipp = Sipp(stream.scenario, f"127.0.0.1:{node.sip_port}", "-s", "100",
                    "-m", str(total), "-l", str(limit), "-r", f"{rate:.3f}",
                    "-d", str(int(stream.hold * 1000)), "-i", "127.0.0.1",
                    "-p", str(free_udp_port()), "-mp", str(free_udp_port()),
                    "-timeout", f"{int(seconds + stream.hold + 120)}s",
                    "-trace_stat", "-fd", "5", "-stf", str(workdir / f"{stream.name}_stat.csv"),
                    cwd=workdir, name=stream.name)
        callers.append((stream, sipp))
    return callers


def sample(node: Node, redis: RedisServer | None, started: float) -> dict[str, Any]:
    pid = node.process.pid
    row: dict[str, Any] = {"t": round(time.monotonic() - started, 1),
                           "rss_mib": round(rss_mib(pid), 1), "fds": open_fds(pid),
                           "udp_sockets": udp_sockets(pid), "active": active_calls(node)}
    if redis is not None:
        row["redis_keys"] = int(redis.client().dbsize())
    return row


def delete_finished_recordings(node: Node) -> int:
    """Remove recordings whose sidecar is written (the call is over); how many."""
    done = node.recordings_done()
    for wav in done:
        wav.with_suffix(".json").unlink()
        wav.unlink()
    return len(done)


def flatness(samples: list[dict[str, Any]], *, warmup: float, until: float) -> list[
        dict[str, Any]]:
    """First- and last-quarter medians of each figure after the warm-up, and the verdict."""
    steady = [s for s in samples if warmup <= s["t"] <= until]
    quarter = max(1, len(steady) // 4)
    rows = []
    for key, (rel, slack) in TOLERANCE.items():
        values = [s[key] for s in steady if key in s]
        if not values:
            continue
        first = statistics.median(values[:quarter])
        last = statistics.median(values[-quarter:])
        limit = first * (1 + rel) + slack
        rows.append({"check": f"{key} flat", "first": first, "last": last,
                     "limit": f"<= {limit:g}", "ok": last <= limit})
    if len(steady) < 4:
        rows.append({"check": "steady samples", "first": len(steady), "last": "",
                     "limit": ">= 4", "ok": False})
    return rows


def cdr_checks(node: Node, callers: list[tuple[Stream, Sipp]], workdir: Path) -> tuple[
        list[dict[str, Any]], dict[str, int]]:
    """Each stream's calls against the CDR rows carrying its SIPp's Call-IDs."""
    result = node.cli("export-cdr")
    if result.returncode != 0:
        raise RuntimeError(f"export-cdr failed: {result.stderr}")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    rows_by_call_id = {row.get("sip_call_id"): row for row in rows}
    checks = [{"check": "CDR rows unique per Call-ID", "first": len(rows),
               "last": len(rows_by_call_id), "limit": "equal",
               "ok": len(rows) == len(rows_by_call_id)}]
    placed_total = 0
    for stream, sipp in callers:
        counts = sipp_counts(workdir / f"{stream.name}_stat.csv")
        placed_total += counts["created"]
        # SIPp's Call-IDs are <call number>-<sipp pid>@<local ip>, numbered from 1.
        expected = {f"{i}-{sipp.proc.pid}@127.0.0.1" for i in range(1, counts["created"] + 1)}
        found = [rows_by_call_id[c] for c in expected if c in rows_by_call_id]
        right = sum(1 for row in found if row["outcome"] == stream.outcome)
        checks.append({"check": f"{stream.name}: CDR rows {stream.outcome}",
                       "first": counts["created"], "last": right, "limit": "equal",
                       "ok": right == counts["created"]})
        checks.append({"check": f"{stream.name}: SIPp failed calls", "first": "",
                       "last": counts["failed"], "limit": "0", "ok": counts["failed"] == 0})
    checks.append({"check": "CDR rows = calls placed", "first": placed_total,
                   "last": len(rows), "limit": "equal", "ok": len(rows) == placed_total})
    return checks, {"placed": placed_total, "cdr_rows": len(rows)}


def run(args: argparse.Namespace, workdir: Path) -> tuple[list[dict[str, Any]],
                                                          list[dict[str, Any]], dict[str, Any]]:
    seconds = args.minutes * 60
    redis = RedisServer(workdir / "redis") if args.state == "redis" else None
    agent_port = free_udp_port()
    node = Node(workdir / "node", plan(args.calls, agent_port),
                rtp_ports=max(4 * args.calls + 100, 400), log_level="info",
                state=redis.url if redis is not None else None)
    write_ulaw_tone(workdir / "caller_audio.ulaw", 440.0, seconds=1.0)
    agents = Sipp("uas_answer.xml", "-i", "127.0.0.1", "-p", str(agent_port),
                  "-mp", str(free_udp_port()), "-rtp_echo", "-max_socket", "4096",
                  cwd=workdir, name="agents")
    callers: list[tuple[Stream, Sipp]] = []
    samples: list[dict[str, Any]] = []
    recordings = 0
    try:
        time.sleep(1)
        idle = sample(node, redis, time.monotonic())
        started = time.monotonic()
        callers = start_callers(node, workdir, args.calls, seconds)
        deadline = started + seconds + max(s.hold for s in STREAMS) + 120
        while any(sipp.proc.poll() is None for _, sipp in callers):
            if time.monotonic() > deadline:
                raise RuntimeError("callers still running past the deadline:\n" + "\n".join(
                    sipp.describe() for _, sipp in callers))
            samples.append(sample(node, redis, started))
            recordings += delete_finished_recordings(node)
            print(json.dumps(samples[-1]), file=sys.stderr, flush=True)
            time.sleep(args.sample)
        # The last calls' records and ports are released just after their BYE.
        settle = time.monotonic() + 30
        while active_calls(node) != 0 and time.monotonic() < settle:
            time.sleep(0.5)
        time.sleep(2)
        after = sample(node, redis, started)
        recordings += delete_finished_recordings(node)
        warmup = max(0.2 * seconds, min(60.0, seconds / 2))
        checks = flatness(samples, warmup=warmup, until=seconds)
        checks.append({"check": "active calls after the run", "first": "",
                       "last": after["active"], "limit": "0", "ok": after["active"] == 0})
        checks.append({"check": "UDP sockets after the run", "first": idle["udp_sockets"],
                       "last": after["udp_sockets"], "limit": "= before the first call",
                       "ok": after["udp_sockets"] == idle["udp_sockets"]})
        cdr, totals = cdr_checks(node, callers, workdir)
        checks += cdr
        peak = max((s["active"] or 0) for s in samples) if samples else 0
        summary = {"minutes": args.minutes, "calls": args.calls, "state": args.state,
                   "warmup_s": warmup, "samples": len(samples), "peak_active": peak,
                   "recordings": recordings, "idle": idle, "after": after, **totals}
    finally:
        for _, sipp in callers:
            sipp.stop()
        agents.stop()
        node.stop()
        if redis is not None:
            redis.stop()
    return checks, samples, summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long calls are placed")
    parser.add_argument("--calls", type=int, default=100, help="concurrent calls")
    parser.add_argument("--state", choices=("embedded", "redis"), default="embedded")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--json", type=Path, help="also write the samples and checks here")
    parser.add_argument("--keep", type=Path,
                        help="work in this (new) directory and keep the logs")
    args = parser.parse_args()
    if args.minutes <= 0 or args.calls < len(STREAMS):
        parser.error(f"--minutes must be positive and --calls at least {len(STREAMS)}")
    if args.state == "redis" and shutil.which("redis-server") is None:
        parser.error("--state redis needs redis-server (Debian package redis-server)")
    with tempfile.TemporaryDirectory(prefix="ccswitch-soak-") as tmp_dir:
        workdir = args.keep or Path(tmp_dir)
        workdir.mkdir(parents=True, exist_ok=True)
        checks, samples, summary = run(args, workdir)
    print(f"Machine: {machine()}\n")
    print(f"Soak: {summary['minutes']:g} min, {summary['calls']} concurrent calls "
          f"(peak active {summary['peak_active']:g}), state {summary['state']}, "
          f"{summary['placed']} calls placed, {summary['cdr_rows']} CDR rows, "
          f"{summary['recordings']} recordings, {summary['samples']} samples, "
          f"warm-up {summary['warmup_s']:g} s\n")
    print("| check | first / expected | last / found | limit | result |")
    print("|---|---|---|---|---|")
    for c in checks:
        print(f"| {c['check']} | {c['first']} | {c['last']} | {c['limit']} | "
              f"{'ok' if c['ok'] else 'FAIL'} |")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "summary": summary,
                                         "checks": checks, "samples": samples}, indent=2))
    return 0 if all(c["ok"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
