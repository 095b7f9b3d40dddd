"""The service config's optional ``portal:`` section (the supervisor portal).

Present (``portal: {}`` at least) turns the portal on under ``/portal`` on the HTTP
port; every key has a default (``ccswitch.model.PortalConfig``).
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ccswitch.config.checker import _Checker, _Section, _section
from ccswitch.config.values import _resolve
from ccswitch.model import CdrConfig, PortalConfig

KEYS = ("audit_log", "session_ttl", "user_failures", "source_failures", "lockout", "max_body",
        "sl_threshold", "tz", "secure_cookies", "peers")
#: The audit log's default name, in the node's own directory (``cdr.directory``).
AUDIT_LOG = "portal-audit.log"


def _peers(sec: _Section, api_token: bool) -> tuple[str, ...]:
    value = sec.data.get("peers")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        sec.error("peers", "must be a list of http://host:port URLs")
        return ()
    peers = []
    for url in value:
        parts = urllib.parse.urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/") \
                or parts.query or parts.username:
            sec.error("peers", f"{url!r} is not an http://host:port URL of a node's HTTP port")
            continue
        peers.append(f"{parts.scheme}://{parts.netloc}")
    if peers and not api_token:
        sec.error("peers", "needs http.api_token_file: the portal reads its peers' calls "
                           "through their operator API, with the token the nodes share")
    return tuple(peers)


def parse_portal(ck: _Checker, value: object, line: int, base: Path,
                 cdr: CdrConfig | None, *, api_token: bool = False) -> PortalConfig | None:
    """The portal settings; None when the section is absent or has errors (reported)."""
    if value is None:
        return None
    sec = _section(ck, value, "portal", line, allowed=KEYS)
    if sec is None or cdr is None:
        return None
    errors = len(ck.report.errors)
    text = sec.string("audit_log", what="a file path")
    audit = _resolve(base, text) if text is not None else cdr.node_directory / AUDIT_LOG
    if audit.exists() and not audit.is_file():
        sec.error("audit_log", f"{audit} exists and is not a file")
    tz = sec.string("tz", what="a time zone name like Europe/Paris") or "UTC"
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        sec.error("tz", f"unknown time zone {tz!r}")
    defaults = PortalConfig(audit_log=audit)
    ttl = sec.number("session_ttl", minimum=60, inclusive=True)
    lockout = sec.number("lockout", minimum=1, inclusive=True)
    sl = sec.number("sl_threshold", minimum=0, inclusive=False)
    user_failures = sec.integer("user_failures", minimum=1, maximum=1000)
    source_failures = sec.integer("source_failures", minimum=1, maximum=100000)
    max_body = sec.integer("max_body", minimum=1024, maximum=1024 * 1024)
    secure = sec.boolean("secure_cookies")
    peers = _peers(sec, api_token)
    if len(ck.report.errors) > errors:
        return None
    return PortalConfig(
        audit_log=audit, tz=tz,
        session_ttl=defaults.session_ttl if ttl is None else ttl,
        lockout=defaults.lockout if lockout is None else lockout,
        sl_threshold=defaults.sl_threshold if sl is None else sl,
        user_failures=defaults.user_failures if user_failures is None else user_failures,
        source_failures=defaults.source_failures if source_failures is None
        else source_failures,
        max_body=defaults.max_body if max_body is None else max_body,
        secure_cookies=bool(secure), peers=peers)
