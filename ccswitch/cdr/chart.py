"""A PNG chart of a KPI report: ASA and service level per period.

Two panels sharing the time axis: ASA in seconds on top, service level in per
cent below (with the report's threshold in the title), one line per
queue x route. A period in which a queue x route had no calls (or no defined
value) leaves a gap rather than joining its neighbours.

matplotlib is imported only here, when a chart is drawn, and draws with the Agg
canvas (no display, no pyplot global state), so the rest of ccswitch does not
need it.
"""

from __future__ import annotations

import datetime
import math
import os
from pathlib import Path
from zoneinfo import ZoneInfo

from ccswitch.cdr.report import Report
from ccswitch.cdr.store import CdrError


def write_chart(report: Report, path: Path) -> None:
    """Draw ``report`` as a PNG at ``path`` (written whole or not at all).

    An empty report gives a chart saying "no calls in range". Raises CdrError if
    matplotlib is not installed or the file cannot be written.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.dates import AutoDateLocator, DateFormatter
        from matplotlib.figure import Figure
    except ImportError as e:
        raise CdrError(f"charts need matplotlib (pip install matplotlib): {e}") from None

    zone = ZoneInfo(report.tz)
    figure = Figure(figsize=(11, 7), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(f"ccswitch KPIs per {report.period} ({report.tz})")
    asa_axes, sl_axes = figure.subplots(2, 1, sharex=True)
    asa_axes.set_title("ASA: mean queue wait of answered calls")
    asa_axes.set_ylabel("ASA (s)")
    sl_axes.set_title(f"Service level: answered within {report.sl_threshold:g} s "
                      f"/ (offered - short abandons)")
    sl_axes.set_ylabel("service level (%)")
    sl_axes.set_ylim(-2, 102)
    sl_axes.set_xlabel(f"period start ({report.tz})")
    for axes in (asa_axes, sl_axes):
        axes.grid(True, alpha=0.3)

    starts = sorted({line.period_start_ms for line in report.lines})
    if not starts:
        for axes in (asa_axes, sl_axes):
            axes.text(0.5, 0.5, "no calls in range", ha="center", va="center",
                      transform=axes.transAxes)
            axes.set_xticks([])
    else:
        index = {ms: i for i, ms in enumerate(starts)}
        times = [datetime.datetime.fromtimestamp(ms / 1000, tz=zone) for ms in starts]
        series: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
        for line in report.lines:
            asa, sl = series.setdefault(
                (line.queue, line.route), ([math.nan] * len(starts), [math.nan] * len(starts)))
            i = index[line.period_start_ms]
            if line.asa is not None:
                asa[i] = line.asa
            if line.service_level is not None:
                sl[i] = 100 * line.service_level
        for (queue, route), (asa, sl) in sorted(series.items()):
            label = f"{queue} / {route}"
            asa_axes.plot(times, asa, marker="o", label=label)
            sl_axes.plot(times, sl, marker="o", label=label)
        asa_axes.set_ylim(bottom=0)
        asa_axes.legend(loc="best", fontsize="small")
        # matplotlib.dates is not annotated; both take the zone to label local times.
        locator = AutoDateLocator(tz=zone)  # type: ignore[no-untyped-call]
        formatter = DateFormatter(  # type: ignore[no-untyped-call]
            "%Y-%m-%d" if report.period == "day" else "%m-%d %H:%M", tz=zone)
        sl_axes.xaxis.set_major_locator(locator)
        sl_axes.xaxis.set_major_formatter(formatter)
        figure.autofmt_xdate()

    partial = path.with_name(f".{path.name}.partial")
    try:
        figure.savefig(partial, format="png")
        os.replace(partial, path)
    except OSError as e:
        partial.unlink(missing_ok=True)
        raise CdrError(f"cannot write chart {path}: {e}") from e
