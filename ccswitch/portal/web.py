"""The portal's HTTP side on klein, mounted at ``/portal`` on the node's HTTP port.

    GET  /portal/login, POST /portal/login, POST /portal/logout
    GET  /portal/wallboard             live wallboard (admin, supervisor)
    GET  /portal/events                its server-sent events: one JSON snapshot a second
    GET  /portal/vendors?period=day|week   vendor vs in-house KPIs and charts
    GET  /portal/calls[?queue=Q]       the last calls (a vendor reviewer: its vendor's)
    GET  /portal/calls/<id>/recording  the WAV, to authorised users, audited
    GET  /portal/static/<file>         the CSS and script (no external resources)

Every POST carries a CSRF token: the session's, or for the login form a random token
also set in a short-lived cookie (double submit). Request bodies above ``max_body`` get
413. Errors answer a short text, never a traceback, and leave a log line.
"""

from __future__ import annotations

import datetime
import json
import secrets
from pathlib import Path
from typing import Any, Callable, Mapping
from zoneinfo import ZoneInfo

from klein import Klein
from werkzeug.exceptions import HTTPException
from twisted.internet import task
from twisted.internet.defer import Deferred, DeferredList
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.server import Request
from twisted.web.static import File

from ccswitch.cdr.store import CdrRow, CdrStore
from ccswitch.model import PortalConfig
from ccswitch.portal import access, pages
from ccswitch.portal.audit import AuditLog
from ccswitch.portal.auth import (
    Clock, LoginLimiter, Session, SessionStore, csrf_ok, tokens_match, verify_password,
)
from ccswitch.portal.kpi import RouteKpi, ScoreSource, compare, no_scores
from ccswitch.portal.peers import Peers
from ccswitch.portal.users import UserStore
from ccswitch.portal.wallboard import Wallboard
from ccswitch.recording.recorder import safe_call_id
from ccswitch.routing.view import EngineView
from ccswitch.state.store import StateStore

log = Logger()
#: Runs a blocking function in a thread (``twisted.internet.threads.deferToThread``).
ToThread = Callable[..., "Deferred[Any]"]

SESSION_COOKIE = b"ccswitch_session"
LOGIN_COOKIE = b"ccswitch_login"
STATIC = Path(__file__).with_name("static")
STATIC_FILES = {"portal.css": "text/css", "wallboard.js": "text/javascript"}
HEADERS = {
    b"Content-Security-Policy": b"default-src 'self'; img-src 'self' data:; "
                                b"frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    b"X-Frame-Options": b"DENY", b"X-Content-Type-Options": b"nosniff",
    b"Referrer-Policy": b"no-referrer", b"Cache-Control": b"no-store",
}
MAX_CALLS = 200  # rows on the calls page
TICK = 1.0  # seconds between wallboard snapshots
KPI_REFRESH = 10.0  # seconds between re-reads of today's KPIs and the users' versions
KEEPALIVE = 15.0  # seconds: an SSE comment line when nothing changed


def _client(request: Request) -> str:
    return str(getattr(request.getClientAddress(), "host", "?"))


def _arg(request: Request, name: str) -> str | None:
    values = (request.args or {}).get(name.encode("ascii"))
    if not values:
        return None
    value: bytes = values[0]
    return value.decode("utf-8", "replace")


class Portal:
    """The portal of one node (see the module docstring)."""

    app = Klein()

    def __init__(self, *, config: PortalConfig, users: UserStore, cdr: CdrStore,
                 view: Callable[[], EngineView], recordings: Path, clock: Clock,
                 reactor: Any, to_thread: ToThread, scores: ScoreSource = no_scores,
                 shared: StateStore | None = None, peers: Peers | None = None) -> None:
        self.config = config
        self._users = users
        self._cdr = cdr
        self._view = view
        self._recordings = recordings.resolve()
        self._clock = clock
        self._to_thread = to_thread
        self._scores = scores
        self._shared = shared
        self._peers = peers
        self._channels: Mapping[str, int] | None = None
        self.sessions = SessionStore(clock, ttl=config.session_ttl)
        self.limiter = LoginLimiter(clock, user_failures=config.user_failures,
                                    source_failures=config.source_failures,
                                    window=config.lockout, lockout=config.lockout)
        self.audit = AuditLog(config.audit_log, clock)
        self._zone = ZoneInfo(config.tz)
        self._board = Wallboard()
        self._today: tuple[Mapping[str, RouteKpi], Mapping[str, RouteKpi],
                           Mapping[str, int]] = ({}, {}, {})
        self._streams: dict[Request, str] = {}
        self._last_event = b""
        self._last_sent = 0.0
        self._tick = task.LoopingCall(self._push)
        self._tick.clock = reactor
        self._kpi_loop = task.LoopingCall(self._refresh_today)
        self._kpi_loop.clock = reactor
        self._cluster_loop = task.LoopingCall(self._refresh_cluster)
        self._cluster_loop.clock = reactor

    def start(self) -> None:
        self._kpi_loop.start(KPI_REFRESH, now=True)
        self._tick.start(TICK, now=False)
        if self._shared is not None or self._peers is not None:
            self._cluster_loop.start(TICK, now=True)

    def stop(self) -> None:
        for loop in (self._tick, self._kpi_loop, self._cluster_loop):
            if loop.running:
                loop.stop()
        for request in list(self._streams):
            request.finish()
        self._streams.clear()

    def resource(self) -> Resource:
        return _Guarded(self.app.resource(), self.config.max_body)

    # -- sessions -------------------------------------------------------------------

    def _session(self, request: Request) -> tuple[str | None, Session | None]:
        raw = request.getCookie(SESSION_COOKIE)
        token = raw.decode("ascii", "replace") if raw else None
        session = self.sessions.get(token)
        if token and session is None:
            log.info("portal: unknown or expired session cookie from {client}",
                     client=_client(request))
        return token, session

    def _need(self, request: Request, allowed: Callable[[Session], bool]
              ) -> Session | bytes:
        """The session, or the answer to give instead (redirect to login, or 403)."""
        _, session = self._session(request)
        if session is None:
            request.redirect(b"/portal/login")
            return b""
        if not allowed(session):
            log.warn("portal: {user} ({role}) refused {path}", user=session.username,
                     role=session.role, path=request.path.decode("utf-8", "replace"))
            request.setResponseCode(403)
            return pages.page("Forbidden", "<p>Your role cannot see this page.</p>",
                              session=session)
        return session

    def _cookie(self, request: Request, name: bytes, value: bytes, max_age: int) -> None:
        request.addCookie(name, value, path=b"/portal", max_age=str(max_age).encode(),
                          httpOnly=True, sameSite="strict", secure=self._secure(request))

    def _secure(self, request: Request) -> bool:
        return self.config.secure_cookies or bool(request.isSecure())

    # -- login and logout -----------------------------------------------------------

    @app.route("/", methods=["GET"])
    def home(self, request: Request) -> bytes:
        _, session = self._session(request)
        if session is None:
            request.redirect(b"/portal/login")
        elif access.can_see_wallboard(session):
            request.redirect(b"/portal/wallboard")
        else:
            request.redirect(b"/portal/vendors")
        return b""

    @app.route("/login", methods=["GET"])
    def login_page(self, request: Request, message: str | None = None) -> bytes:
        token = secrets.token_urlsafe(32)
        self._cookie(request, LOGIN_COOKIE, token.encode("ascii"), 600)
        return pages.page("Log in", pages.login_form(token, message))

    @app.route("/login", methods=["POST"])
    async def login(self, request: Request) -> bytes:
        client = _client(request)
        form_token = _arg(request, "csrf")
        cookie = request.getCookie(LOGIN_COOKIE)
        username = (_arg(request, "username") or "")[:64]
        password = _arg(request, "password") or ""
        if cookie is None or not tokens_match(cookie.decode("ascii", "replace"), form_token):
            log.warn("portal: login from {client} without a valid CSRF token", client=client)
            request.setResponseCode(403)
            return self.login_page(request, "The form expired; please try again.")
        locked = self.limiter.locked(client, username)
        if locked is not None:
            self.audit.write("login_locked", user=username, client=client, scope=locked.scope)
            request.setResponseCode(429)
            request.setHeader(b"Retry-After", str(int(locked.seconds_left) + 1).encode())
            return self.login_page(request, "Too many failed logins; try again later.")
        user = await self._to_thread(self._users.get, username)
        ok = await self._to_thread(verify_password,
                                   None if user is None else user.password_hash, password)
        if not ok or user is None:
            started = self.limiter.failed(client, username)
            self.audit.write("login_failed", user=username, client=client)
            if started is not None:
                self.audit.write("lockout", user=username, client=client, scope=started.scope,
                                 seconds=started.seconds_left)
            request.setResponseCode(401)
            return self.login_page(request, "Wrong user name or password.")
        self.limiter.succeeded(username)
        token, session = self.sessions.create(username=user.username, role=user.role.value,
                                              vendor=user.vendor, version=user.version)
        self._cookie(request, SESSION_COOKIE, token.encode("ascii"),
                     int(self.config.session_ttl))
        request.addCookie(LOGIN_COOKIE, b"", path=b"/portal", max_age=b"0", httpOnly=True,
                          sameSite="strict", secure=self._secure(request))
        self.audit.write("login", user=user.username, role=session.role, client=client)
        request.redirect(b"/portal/")
        return b""

    @app.route("/logout", methods=["POST"])
    def logout(self, request: Request) -> bytes:
        token, session = self._session(request)
        if session is None:
            request.redirect(b"/portal/login")
            return b""
        if not csrf_ok(session, _arg(request, "csrf")):
            log.warn("portal: logout of {user} from {client} without a valid CSRF token",
                     user=session.username, client=_client(request))
            request.setResponseCode(403)
            return b"missing or wrong CSRF token\n"
        self.sessions.end(token)
        self.audit.write("logout", user=session.username, client=_client(request))
        request.addCookie(SESSION_COOKIE, b"", path=b"/portal", max_age=b"0", httpOnly=True,
                          sameSite="strict", secure=self._secure(request))
        request.redirect(b"/portal/login")
        return b""

    # -- wallboard ------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        queues, vendors, abandoned = self._today
        return self._board.snapshot(self._view(), self._clock.seconds(), queues_today=queues,
                                    vendors_today=vendors, abandoned_today=abandoned,
                                    channels=self._channels,
                                    peers=() if self._peers is None else self._peers.states)

    def _read_channels(self, vendors: list[str]) -> dict[str, int]:
        assert self._shared is not None
        return {name: self._shared.channels_in_use(name) for name in vendors}

    def _refresh_cluster(self) -> "Deferred[Any]":
        """Vendor channels in use on every node, from the shared state store (while it
        cannot be reached the wallboard falls back to this node's count), and the peers'
        waiting callers."""
        polls: list[Deferred[Any]] = []
        if self._peers is not None:
            polls.append(self._peers.poll())
        if self._shared is None:
            return DeferredList(polls)
        d = self._to_thread(self._read_channels, list(self._view().vendors))

        def done(channels: Any) -> None:
            self._channels = channels

        def failed(failure: Failure) -> None:
            self._channels = None
            log.warn("portal: cannot read vendor channels from the state store: {error}",
                     error=failure.getErrorMessage())

        d.addCallbacks(done, failed)
        return DeferredList([d, *polls])

    def _today_start_ms(self) -> int:
        now = datetime.datetime.fromtimestamp(self._clock.seconds(), self._zone)
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return int(midnight.timestamp() * 1000)

    def _read_today(self, since_ms: int) -> tuple[dict[str, RouteKpi], dict[str, RouteKpi],
                                                   dict[str, int], dict[str, int]]:
        versions = self._users.versions()
        rows = list(self._cdr.rows(since_ms=since_ms))
        sl = self.config.sl_threshold
        queues = {k.route: k for k in compare(rows, sl_threshold=sl, tz=self.config.tz,
                                              by=lambda r: r.queue)}
        vendors = {k.route: k for k in compare(rows, sl_threshold=sl, tz=self.config.tz)}
        abandoned: dict[str, int] = {}
        for r in rows:
            if r.answered_ms is None and r.outcome.startswith("abandon"):
                abandoned[r.queue] = abandoned.get(r.queue, 0) + 1
        return queues, vendors, abandoned, versions

    def _refresh_today(self) -> "Deferred[None]":
        """Today's KPIs from the CDR database; also ends the sessions of users removed or
        given a new password since they logged in (``ccswitch user`` runs elsewhere)."""
        d = self._to_thread(self._read_today, self._today_start_ms())

        def done(today: Any) -> None:
            queues, vendors, abandoned, versions = today
            self._today = (queues, vendors, abandoned)
            for ended in self.sessions.retain(versions):
                self.audit.write("session_revoked", user=ended.username,
                                 reason="user removed or password changed")

        def failed(failure: Failure) -> None:
            log.warn("portal: cannot read today's KPIs: {error}",
                     error=failure.getErrorMessage())

        d.addCallbacks(done, failed)
        return d

    @app.route("/wallboard", methods=["GET"])
    def wallboard(self, request: Request) -> bytes:
        session = self._need(request, access.can_see_wallboard)
        if not isinstance(session, Session):
            return session
        return pages.page("Wallboard", pages.wallboard(self.snapshot()), session=session,
                          script="wallboard.js")

    @app.route("/events", methods=["GET"])
    def events(self, request: Request) -> Any:
        token, session = self._session(request)
        if session is None or token is None or not access.can_see_wallboard(session):
            request.setResponseCode(403 if session else 401)
            return b"log in as a supervisor first\n"
        request.setHeader(b"Content-Type", b"text/event-stream")
        request.write(b"retry: 2000\n" + self._event(self.snapshot()))
        self._streams[request] = token
        # klein finishes the request once the handler's result is there: hand it a
        # Deferred that fires only when the stream ends (client gone, session over, stop).
        closed: Deferred[None] = Deferred()

        def gone(_: object) -> None:
            self._streams.pop(request, None)
            if not closed.called:
                closed.callback(None)

        request.notifyFinish().addBoth(gone)
        return closed

    @staticmethod
    def _event(snapshot: dict[str, Any]) -> bytes:
        return b"data: " + json.dumps(snapshot, sort_keys=True).encode("utf-8") + b"\n\n"

    def _push(self) -> None:
        """One snapshot for every open stream; streams of ended sessions are closed."""
        if not self._streams:
            return
        for request, token in list(self._streams.items()):
            if self.sessions.get(token) is None:
                del self._streams[request]
                request.finish()
        event = self._event(self.snapshot())
        now = self._clock.seconds()
        if event == self._last_event and now - self._last_sent < KEEPALIVE:
            return
        data = event if event != self._last_event else b": keepalive\n\n"
        self._last_event, self._last_sent = event, now
        for request in self._streams:
            request.write(data)

    # -- vendor comparison and calls ------------------------------------------------

    @app.route("/vendors", methods=["GET"])
    async def vendors(self, request: Request) -> bytes:
        session = self._need(request, access.can_compare)
        if not isinstance(session, Session):
            return session
        period = _arg(request, "period") or "day"
        if period not in ("day", "week"):
            request.setResponseCode(400)
            return b"period must be day or week\n"
        days = 56 if period == "week" else 14
        since = self._today_start_ms() - (days - 1) * 86_400_000
        kpis = await self._to_thread(self._compare, since, period)
        shown = set(access.visible_routes(session, {k.route for k in kpis}))
        return pages.page("Vendor vs in-house",
                          pages.comparison([k for k in kpis if k.route in shown], period),
                          session=session)

    def _compare(self, since_ms: int, period: str) -> list[RouteKpi]:
        rows = self._cdr.rows(since_ms=since_ms - 86_400_000)  # a day of repeat history
        return compare(rows, period=period, tz=self.config.tz,
                       sl_threshold=self.config.sl_threshold, since_ms=since_ms,
                       scores=self._scores)

    @app.route("/calls", methods=["GET"])
    async def calls(self, request: Request) -> bytes:
        session = self._need(request, access.can_compare)
        if not isinstance(session, Session):
            return session
        queue = _arg(request, "queue")
        since = self._today_start_ms() - 6 * 86_400_000
        rows: list[CdrRow] = await self._to_thread(
            lambda: list(self._cdr.rows(since_ms=since, queue=queue)))
        mine = [r for r in rows if access.can_play(session, r.vendor)][-MAX_CALLS:]
        shown = [{"call_id": r.call_id, "queue": r.queue, "route": r.vendor or r.route,
                  "outcome": r.outcome, "recording": r.recording_path is not None,
                  "arrived": datetime.datetime.fromtimestamp(
                      r.arrived_ms / 1000, self._zone).strftime("%Y-%m-%d %H:%M:%S")}
                 for r in reversed(mine)]
        return pages.page("Calls", pages.calls(shown), session=session)

    # ``path``, not ``string``: an id with a slash in it must reach safe_call_id to be
    # refused (and audited), not fall through to a silent 404.
    @app.route("/calls/<path:call_id>/recording", methods=["GET"])
    async def recording(self, request: Request, call_id: str) -> Any:
        _, session = self._session(request)
        client = _client(request)
        if session is None:
            request.setResponseCode(401)
            return b"log in first\n"
        if safe_call_id(call_id) != call_id:
            self.audit.write("recording_refused", user=session.username, client=client,
                             call_id=safe_call_id(call_id), reason="bad call id")
            request.setResponseCode(400)
            return b"bad call id\n"
        row = await self._to_thread(self._cdr.get, call_id)
        if row is not None and not access.can_play(session, row.vendor):
            self.audit.write("recording_refused", user=session.username, client=client,
                             call_id=call_id, reason="not this user's vendor")
            request.setResponseCode(403)
            return b"this call is not yours to play\n"
        path = None if row is None or row.recording_path is None else \
            Path(row.recording_path).resolve()
        if path is None or not path.is_relative_to(self._recordings) or not path.is_file():
            request.setResponseCode(404)
            return b"no recording for this call\n"
        self.audit.write("recording_play", user=session.username, client=client,
                         call_id=call_id, bytes=path.stat().st_size)
        request.setHeader(b"Content-Disposition", f'inline; filename="{path.name}"'.encode())
        return File(str(path), defaultType="audio/wav")

    @app.route("/static/<string:name>", methods=["GET"])
    def static(self, request: Request, name: str) -> bytes:
        kind = STATIC_FILES.get(name)
        if kind is None:
            request.setResponseCode(404)
            return b"not found\n"
        request.setHeader(b"Content-Type", kind.encode("ascii"))
        request.setHeader(b"Cache-Control", b"max-age=3600")
        return (STATIC / name).read_bytes()

    @app.handle_errors(Exception)
    def failed(self, request: IRequest, failure: Failure) -> bytes:
        error = failure.value
        if isinstance(error, HTTPException):  # no such route (404), wrong method (405)
            code = error.code or 400
            request.setResponseCode(code)
            return f"{code} {error.name}\n".encode("ascii", "replace")
        log.failure("portal: {method} {path} failed", failure,
                    method=request.method.decode("ascii", "replace"),
                    path=request.uri.decode("utf-8", "replace"))
        request.setResponseCode(500)
        return b"internal error (logged)\n"


class _Guarded(Resource):
    """Security headers on every answer; bodies above ``max_body`` refused with 413."""

    isLeaf = True

    def __init__(self, inner: Resource, max_body: int) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # twisted.web is unannotated
        self._inner = inner
        self._max_body = max_body

    def render(self, request: Request) -> Any:
        for name, value in HEADERS.items():
            request.setHeader(name, value)
        length = request.getHeader(b"content-length")
        size = request.content.seek(0, 2) if request.content is not None else 0
        if size > self._max_body or (length is not None and length.isdigit()
                                     and int(length) > self._max_body):
            log.warn("portal: refused a {size}-byte body from {client}", size=size,
                     client=_client(request))
            request.setResponseCode(413)
            return b"request body too large\n"
        if request.content is not None:
            request.content.seek(0)
        return self._inner.render(request)
