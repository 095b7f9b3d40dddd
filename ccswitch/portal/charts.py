"""Small bar charts as inline SVG, drawn server-side (no script, no external library)."""

from __future__ import annotations

from html import escape
from typing import Sequence

#: One colour per series, in order; colour-blind-safe (Okabe-Ito).
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00")


def bar_chart(title: str, periods: Sequence[str], series: Sequence[tuple[str, Sequence[
        float | None]]], *, unit: str = "", width: int = 640, height: int = 220) -> str:
    """Grouped bars: one group per period, one bar per series (None: no bar)."""
    top = max([v for _, values in series for v in values if v is not None] or [1.0]) or 1.0
    left, bottom, plot_h = 48, 40, height - 70
    plot_w = width - left - 10
    group_w = plot_w / max(1, len(periods))
    bar_w = max(2.0, group_w * 0.8 / max(1, len(series)))
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" '
             f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
             f'xmlns="http://www.w3.org/2000/svg">',
             f'<text x="{left}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" '
             f'y2="{height - bottom}" stroke="#444"/>',
             f'<text x="4" y="{height - bottom - plot_h + 4}" font-size="10">'
             f'{top:.3g}{escape(unit)}</text>']
    for i, period in enumerate(periods):
        x0 = left + i * group_w + group_w * 0.1
        for j, (name, values) in enumerate(series):
            value = values[i] if i < len(values) else None
            if value is None:
                continue
            h = plot_h * value / top
            parts.append(f'<rect x="{x0 + j * bar_w:.1f}" y="{height - bottom - h:.1f}" '
                         f'width="{bar_w - 1:.1f}" height="{h:.1f}" '
                         f'fill="{COLOURS[j % len(COLOURS)]}"><title>{escape(name)} '
                         f'{escape(period)}: {value:.3g}{escape(unit)}</title></rect>')
        parts.append(f'<text x="{x0:.1f}" y="{height - bottom + 14}" font-size="10">'
                     f'{escape(period)}</text>')
    for j, (name, _) in enumerate(series):
        x = left + j * 120
        parts.append(f'<rect x="{x}" y="{height - 14}" width="10" height="10" '
                     f'fill="{COLOURS[j % len(COLOURS)]}"/><text x="{x + 14}" '
                     f'y="{height - 5}" font-size="11">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)
