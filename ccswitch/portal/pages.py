"""Server-rendered HTML of the portal's pages. Every value from data or the user goes
through ``html.escape``; pages load only ``/portal/static/`` files (no CDN)."""

from __future__ import annotations

from html import escape
from typing import Any, Sequence

from ccswitch.portal import access
from ccswitch.portal.access import INHOUSE
from ccswitch.portal.charts import bar_chart
from ccswitch.portal.auth import Session
from ccswitch.portal.kpi import RouteKpi


def page(title: str, body: str, *, session: Session | None = None,
         script: str | None = None) -> bytes:
    nav = ""
    if session is not None:
        wallboard = ('<a href="/portal/wallboard">Wallboard</a> '
                     if access.can_see_wallboard(session) else "")
        nav = (f'<nav>{wallboard}'
               f'<a href="/portal/vendors">Vendor vs in-house</a> '
               f'<a href="/portal/calls">Calls</a>'
               f'<form method="post" action="/portal/logout" class="logout">'
               f'<span>{escape(session.username)} ({escape(session.role)})</span> '
               f'<input type="hidden" name="csrf" value="{escape(session.csrf)}">'
               f'<button type="submit">Log out</button></form></nav>')
    tag = f'<script src="/portal/static/{escape(script)}" defer></script>' if script else ""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{escape(title)} · ccswitch</title>'
            f'<link rel="stylesheet" href="/portal/static/portal.css">{tag}</head>'
            f'<body>{nav}<main><h1>{escape(title)}</h1>{body}</main></body></html>'
            ).encode("utf-8")


def login_form(token: str, message: str | None = None) -> str:
    note = f'<p class="error" id="login-error">{escape(message)}</p>' if message else ""
    return (f'{note}<form method="post" action="/portal/login" class="login">'
            f'<input type="hidden" name="csrf" value="{escape(token)}">'
            f'<label>User <input name="username" id="username" autocomplete="username" '
            f'required maxlength="64"></label>'
            f'<label>Password <input name="password" id="password" type="password" '
            f'autocomplete="current-password" required maxlength="1024"></label>'
            f'<button type="submit" id="login">Log in</button></form>')


def _fmt(value: Any, kind: str) -> str:
    if value is None:
        return "n/a"
    if kind == "pct":
        return f"{value * 100:.1f} %"
    if kind == "s":
        return f"{value:.1f} s"
    return escape(str(value))


def _rows(items: Sequence[dict[str, Any]], cols: Sequence[tuple[str, str]]) -> str:
    return "".join("<tr>" + "".join(f'<td data-col="{k}">{_fmt(i.get(k), kind)}</td>'
                                    for k, kind in cols) + "</tr>" for i in items)


QUEUE_COLS = (("name", ""), ("waiting", ""), ("longest_wait", "s"), ("sl_today", "pct"),
              ("asa_today", "s"), ("abandoned_today", ""))
AGENT_COLS = (("id", ""), ("state", ""), ("in_state", "s"), ("reason", ""))
VENDOR_COLS = (("name", ""), ("channels", ""), ("status", ""), ("sl_today", "pct"))


def peer_text(peers: Sequence[dict[str, Any]]) -> str:
    """The line naming the other nodes and whether they answer (empty without peers);
    wallboard.js builds the same text."""
    if not peers:
        return ""
    return "Other nodes: " + ", ".join(f"{p['url']} {'up' if p['up'] else 'DOWN'}"
                                       for p in peers)


def wallboard(snapshot: dict[str, Any]) -> str:
    vendors = [{**v, "channels": f"{v['in_use']}/{v['max']}",
                "status": "up" if v["up"] else "down"} for v in snapshot["vendors"]]

    def table(tid: str, heads: Sequence[str], body: str) -> str:
        return (f'<table id="{tid}"><thead><tr>'
                + "".join(f"<th>{escape(h)}</th>" for h in heads)
                + f"</tr></thead><tbody>{body}</tbody></table>")

    return (
        '<p class="live">Live <span id="updated"></span></p>'
        f'<p id="peers">{escape(peer_text(snapshot["peers"]))}</p><h2>Queues</h2>'
        + table("queues", ("Queue", "Waiting", "Longest wait", "SL today", "ASA today",
                           "Abandoned today"), _rows(snapshot["queues"], QUEUE_COLS))
        + "<h2>Agents</h2>"
        + table("agents", ("Agent", "State", "In state", "Why not offered"),
                _rows(snapshot["agents"], AGENT_COLS))
        + "<h2>Vendors</h2>"
        + table("vendors", ("Vendor", "Channels", "Status", "SL today"),
                _rows(vendors, VENDOR_COLS)))


COMPARE_COLS = (("period", ""), ("route", ""), ("offered", ""), ("answered", ""),
                ("asa", "s"), ("aht", "s"), ("abandon_rate", "pct"), ("service_level", "pct"),
                ("fcr", "pct"), ("csat", ""), ("qa", ""))


def comparison(kpis: Sequence[RouteKpi], period: str) -> str:
    periods = sorted({k.period for k in kpis})
    routes = sorted({k.route for k in kpis}, key=lambda r: (r != INHOUSE, r))
    by = {(k.period, k.route): k for k in kpis}

    def series(attr: str, scale: float = 1.0) -> list[tuple[str, list[float | None]]]:
        out = []
        for r in routes:
            values = [getattr(by[(p, r)], attr) if (p, r) in by else None for p in periods]
            out.append((r, [None if v is None else v * scale for v in values]))
        return out

    switch = " ".join(
        f'<a href="/portal/vendors?period={p}"{" class=on" if p == period else ""}>by {p}</a>'
        for p in ("day", "week"))
    heads = ("Period", "Route", "Offered", "Answered", "ASA", "AHT", "Abandoned", "SL",
             "FCR (proxy)", "CSAT", "QA score")
    table = ('<table id="comparison"><thead><tr>' + "".join(f"<th>{h}</th>" for h in heads)
             + "</tr></thead><tbody>"
             + _rows([{k: getattr(x, k) for k, _ in COMPARE_COLS} for x in kpis], COMPARE_COLS)
             + "</tbody></table>")
    if not kpis:
        return f"<p>{switch}</p><p>No calls in this range.</p>"
    charts = "".join(bar_chart(t, periods, series(a, s), unit=u) for t, a, s, u in (
        ("ASA", "asa", 1.0, " s"), ("Service level", "service_level", 100.0, " %"),
        ("Abandonment", "abandon_rate", 100.0, " %"), ("AHT", "aht", 1.0, " s")))
    return f'<p>{switch}</p>{table}<div class="charts">{charts}</div>'


def calls(rows: Sequence[dict[str, Any]]) -> str:
    body = "".join(
        f'<tr><td>{escape(r["call_id"])}</td><td>{escape(r["queue"])}</td>'
        f'<td>{escape(r["route"])}</td><td>{escape(r["outcome"])}</td>'
        f'<td>{escape(r["arrived"])}</td><td>'
        + (f'<a href="/portal/calls/{escape(r["call_id"])}/recording">play</a>'
           if r["recording"] else "") + "</td></tr>" for r in rows)
    return ('<table id="calls"><thead><tr><th>Call</th><th>Queue</th><th>Route</th>'
            '<th>Outcome</th><th>Arrived</th><th>Recording</th></tr></thead>'
            f"<tbody>{body}</tbody></table>")
