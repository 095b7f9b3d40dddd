#!/usr/bin/env python3
"""Load benchmark: SIPp callers -> ccswitch -> SIPp auto-answering agents, RTP both ways.

For each concurrency level N a fresh ccswitch process is started with N
agents (all served by one SIPp UAS that answers and echoes RTP). One SIPp UAC
places N calls at ``--rate`` calls/s; each streams G.711 for ``--hold``
seconds after ccswitch answers (the QA notice plays first, then the agent is
rung and bridged, and the call is recorded). While all calls are up the
script samples ccswitch's CPU time and RSS from /proc; at the end it counts
SIPp's successful and failed calls and ccswitch's finished recordings.

    make bench                       # default levels 25 50 100 200
    .venv/bin/python bench/run.py --levels 50 --hold 20 --rate 20

Every level is bounded in time (hold + setup + 60 s) and every process is
stopped at the end. Results are printed as a Markdown table (copy into
BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

from common import (Node, active_calls, cpu_seconds, machine, open_fds, plan, rss_mib,
                    sipp_counts)
from tests.phones.client import Sipp, free_udp_port, write_ulaw_tone


def gap_percent(recordings: list[Path], sidecars: list[dict[str, Any]]) -> float | None:
    """Share of 20 ms frames of talk (after the agent answered) that are silent, both channels.

    Callers stream a continuous tone and agents echo it, so every silent frame is
    audio ccswitch lost or got too late: the media-quality measure for a level.
    """
    silent = total = 0
    for wav, meta in zip(recordings, sidecars):
        if not meta.get("answered_at"):
            continue
        with wave.open(str(wav)) as f:
            audio = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").reshape(-1, 2)
        began = meta.get("recording_started_at") or meta["arrived_at"]
        start = int((meta["answered_at"] - began + 0.5) * 8000)
        talk = audio[start: len(audio) - 4000]
        frames = talk[: len(talk) // 160 * 160].reshape(-1, 160, 2).astype(np.float64)
        level = np.sqrt((frames ** 2).mean(axis=1))
        silent += int((level < 50).sum())
        total += level.size
    return round(100 * silent / total, 2) if total else None


def run_level(n: int, *, rate: float, hold: float, workdir: Path) -> dict[str, Any]:
    workdir.mkdir(parents=True)
    agent_port, caller_port = free_udp_port(), free_udp_port()
    node = Node(workdir / "node", plan(n, agent_port), rtp_ports=max(4 * n + 100, 400),
                log_level="info")
    pid = node.process.pid
    write_ulaw_tone(workdir / "caller_audio.ulaw", 440.0, seconds=1.0)
    idle_rss = rss_mib(pid)
    uas = Sipp("uas_answer.xml", "-i", "127.0.0.1", "-p", str(agent_port),
               "-mp", str(free_udp_port()), "-rtp_echo", "-max_socket", "4096",
               cwd=workdir, name="agents")
    setup = n / rate
    uac = Sipp("uac_call.xml", f"127.0.0.1:{node.sip_port}", "-s", "100", "-m", str(n),
               "-l", str(n), "-r", f"{rate:g}", "-d", str(int(hold * 1000)),
               "-i", "127.0.0.1", "-p", str(caller_port), "-mp", str(free_udp_port()),
               "-timeout", f"{int(setup + hold + 60)}s", "-trace_stat", "-fd", "1",
               "-stf", str(workdir / "uac_stat.csv"), cwd=workdir, name="callers")
    result: dict[str, Any] = {"calls": n, "rate": rate, "hold_s": hold}
    try:
        # Steady state: every call through the announcement and bridged.
        start = time.monotonic()
        peak = 0.0
        unanswered_scrapes = 0
        deadline = start + setup + 15
        while time.monotonic() < deadline:
            sample = active_calls(node)
            if sample is None:
                unanswered_scrapes += 1
                continue
            peak = max(peak, sample)
            if sample >= n:
                break
            time.sleep(0.25)
        window = min(10.0, max(2.0, hold - (time.monotonic() - start) - 2))
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        time.sleep(window)
        cpu1, t1 = cpu_seconds(pid), time.monotonic()
        sample = active_calls(node)
        if sample is None:
            unanswered_scrapes += 1
        active = sample or peak
        peak = max(peak, active)
        result.update(
            peak_active=int(peak), active_in_window=int(active),
            unanswered_scrapes=unanswered_scrapes,
            cpu_percent=round(100 * (cpu1 - cpu0) / (t1 - t0), 1),
            rss_mib=round(rss_mib(pid), 1), idle_rss_mib=round(idle_rss, 1),
            fds=open_fds(pid))
        status = uac.wait(setup + hold + 90)
        stat_file = workdir / "uac_stat.csv"
        if not stat_file.exists():
            raise RuntimeError(f"SIPp callers exited {status} without statistics:\n"
                               f"{uac.describe()}")
        counts = sipp_counts(stat_file)
        result.update(counts)
        recordings = node.wait_recordings(counts["successful"], timeout=30)
        sidecars = [json.loads(p.with_suffix(".json").read_text()) for p in recordings]
        arrivals = sorted(s["arrived_at"] for s in sidecars)
        answers = sorted(s["answered_at"] - s["queued_at"] for s in sidecars
                         if s.get("answered_at") and s.get("queued_at"))
        result.update(
            recordings=len(recordings),
            answered=sum(1 for s in sidecars if s["outcome"] == "answered_inhouse"),
            setup_rate=round((len(arrivals) - 1) / (arrivals[-1] - arrivals[0]), 1)
            if len(arrivals) > 1 else None,
            agent_answer_ms_median=round(1000 * answers[len(answers) // 2]) if answers else None,
            audio_gap_percent=gap_percent(recordings, sidecars))
    finally:
        uac.stop()
        uas.stop()
        node.stop()
    if active:
        result["cpu_ms_per_call_s"] = round(10 * result["cpu_percent"] / active, 2)
        result["rss_kib_per_call"] = round(1024 * (result["rss_mib"] - idle_rss) / active, 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[25, 50, 100, 200])
    parser.add_argument("--rate", type=float, default=20.0, help="calls offered per second")
    parser.add_argument("--hold", type=float, default=25.0,
                        help="seconds each caller stays after ccswitch answers")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", type=Path,
                        help="work in this (new) directory and keep logs and recordings")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="ccswitch-bench-") as tmp_dir:
        tmp = args.keep or Path(tmp_dir)
        for n in args.levels:
            print(f"level {n}: {n} calls at {args.rate:g}/s, {args.hold:g} s each ...",
                  file=sys.stderr, flush=True)
            results.append(run_level(n, rate=args.rate, hold=args.hold,
                                     workdir=tmp / f"level-{n}"))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(f"Machine: {machine()}\n")
    cols = ["calls", "successful", "failed", "recordings", "answered", "peak_active",
            "setup_rate", "agent_answer_ms_median", "cpu_percent", "cpu_ms_per_call_s",
            "rss_mib", "rss_kib_per_call", "fds", "unanswered_scrapes", "audio_gap_percent"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in results:
        print("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "results": results}, indent=2))
    return 0 if all(r.get("failed", 1) == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
