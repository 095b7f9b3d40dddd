"""The PNG chart of a KPI report."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

from ccswitch.cdr.chart import write_chart
from ccswitch.cdr.report import Report, build_report
from ccswitch.cdr.store import CdrError, CdrRow

pytest.importorskip("matplotlib")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
H = 3_600_000
T0 = 1_795_392_000_000  # 2026-11-23T00:00:00Z


def call(call_id: str, at: int, *, wait_s: float, vendor: str | None = None,
         abandoned: bool = False) -> CdrRow:
    answered_ms = None if abandoned else at + 4000 + round(wait_s * 1000)
    return CdrRow(
        call_id=call_id, sip_call_id=None, node=None, caller=f"c{call_id}", dialed="100",
        queue="support", group="inhouse", route="vendor" if vendor else "inhouse",
        vendor=vendor, agent_id=None if abandoned else "alice",
        outcome="abandoned" if abandoned else "answered", overflow_reason=None, arrived_ms=at,
        announced_ms=at + 4000, queued_ms=at + 4000, answered_ms=answered_ms,
        ended_ms=at + 200_000, wait_ms=round(wait_s * 1000), ring_ms=None,
        talk_ms=None if abandoned else 60_000, hold_ms=None, total_ms=200_000,
        short_abandon=False, qa_notice_played=True, recording_path=None, recording_error=None,
        offers=())


def day_of_calls() -> Report:
    """Eight hours of in-house calls, and a vendor taking calls in some of them."""
    rows = []
    for hour in range(8):
        for n in range(4):
            rows.append(call(f"i{hour}-{n}", T0 + hour * H + n * 60_000,
                             wait_s=5 + 4 * hour + 3 * n, abandoned=(n == 3 and hour % 3 == 0)))
        if hour % 2:
            rows.append(call(f"v{hour}", T0 + hour * H + 30_000, wait_s=40 - 3 * hour,
                             vendor="acme"))
    return build_report(rows, period="hour", tz="Europe/Berlin")


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk (which must come first)."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_chart_is_a_real_png_of_useful_size(tmp_path: Path) -> None:
    """A report with calls gives a PNG (magic bytes, IHDR, 1100x700) of real content."""
    path = tmp_path / "kpi.png"
    write_chart(day_of_calls(), path)
    assert png_size(path) == (1100, 700)
    assert path.stat().st_size > 20_000  # two panels with lines, text and a legend
    assert path.read_bytes().endswith(b"IEND\xaeB`\x82")


def test_an_empty_report_still_gives_a_chart(tmp_path: Path) -> None:
    """No calls: a valid PNG that says so, not an exception."""
    path = tmp_path / "empty.png"
    write_chart(build_report([]), path)
    assert png_size(path) == (1100, 700)


def test_a_day_report_with_one_period_charts(tmp_path: Path) -> None:
    """A single period (one point per line) draws without error."""
    path = tmp_path / "day.png"
    write_chart(build_report([call("a", T0, wait_s=3)], period="day"), path)
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_missing_matplotlib_is_a_cdr_error(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Without matplotlib the chart fails with a CdrError that says what to install."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes the import fail
    with pytest.raises(CdrError, match="matplotlib"):
        write_chart(day_of_calls(), tmp_path / "kpi.png")
    assert not (tmp_path / "kpi.png").exists()


def test_an_unwritable_path_is_a_cdr_error_and_leaves_nothing(tmp_path: Path) -> None:
    """A chart path in a missing directory raises CdrError; no partial file is left."""
    with pytest.raises(CdrError, match="cannot write chart"):
        write_chart(day_of_calls(), tmp_path / "missing" / "kpi.png")
    assert list(tmp_path.iterdir()) == []
