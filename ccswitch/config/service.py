"""The service config file: sip, rtp, http, recordings, cdr, state, node and portal.

:func:`check_config` (what ``ccswitch check`` and ``ccswitch run`` both use) and
:func:`load_config` read the service YAML, check each section and how they fit
together (the SIP port outside the RTP range), then load the dialplans directory
it names.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from ccswitch.cdr.url import check_url as check_database_url, is_url
from ccswitch.config.checker import (
    _NAME, CheckResult, _Checker, _display, _Failed, _kind, _Map, _Report, _Section, _section, _Seq,
)
from ccswitch.config.dialplan import _tls_identity
from ccswitch.config.loading import _load_dir, _raise_or
from ccswitch.config.portal import parse_portal
from ccswitch.config.values import (
    _HOSTNAME, _PORT_RANGE, _listen, _parse_ip, _resolve, _token_problem,
)
from ccswitch.model import (
    AdmissionConfig, CdrConfig, ClientVerify, Config, ConnectionLimits, Dialplan,
    GuardConfig, HoldAudio, HttpConfig, IPNetwork, Listener, RecordingConfig, RecordingStart,
    RtpConfig, SipConfig, StateKind, TlsConfig, Transport,
)
from ccswitch.errors import SipParseError
from ccswitch.recording.sealed import SealedError, load_private_key, load_public_key
from ccswitch.sip.hop import select_transport
from ccswitch.sip.message import SipURI
from ccswitch.sip.tls import TlsSetupError, load_ca
from ccswitch.state.redis_url import StateUrlError, check_url

COMPRESSED_FORMATS: Final = ("mp3", "ogg")
RECORDING_STARTS: Final = tuple(s.value for s in RecordingStart)
HOLD_AUDIOS: Final = tuple(h.value for h in HoldAudio)
STATE_BACKENDS: Final = (StateKind.EMBEDDED.value,)
TRANSPORTS: Final = tuple(t.value for t in Transport)
CLIENT_VERIFY: Final = tuple(v.value for v in ClientVerify)


def _parse_sip(ck: _Checker, value: object, line: int, base: Path) -> SipConfig | None:
    sec = _section(ck, value, "sip", line, required=("listen", "trusted"), allowed=(
        "listen", "advertised_address", "trusted", "user_agent", "max_message_size",
        "max_calls", "max_call_rate", "retry_after", "flood", "tls", "connections"))
    if sec is None:
        return None
    before = len(ck.report.errors)
    listeners = _parse_listeners(sec)
    listen = None if listeners is None else (listeners[0].host, listeners[0].port)
    advertised = sec.string("advertised_address", what="a host name or IP address")
    if advertised is not None:
        advertised = advertised.strip()
        if advertised.startswith("[") and advertised.endswith("]"):
            advertised = advertised[1:-1]
        try:
            if ipaddress.ip_address(advertised).is_unspecified:
                sec.error("advertised_address", f"{advertised} is a wildcard; give the "
                          "address other SIP peers reach this node at")
        except ValueError:
            if not _HOSTNAME.fullmatch(advertised):
                sec.error("advertised_address", f"{advertised!r} is not a host name or "
                          "IP address (no port here)")
    elif listen is not None and ipaddress.ip_address(listen[0]).is_unspecified:
        sec.error("listen", f"listening on the wildcard {listen[0]} needs "
                  "sip.advertised_address (the address peers send SIP to)")
    trusted: list[IPNetwork] = []
    raw = sec.data.get("trusted")
    if sec.has("trusted"):
        if not isinstance(raw, list):
            sec.error("trusted", f"must be a list of CIDR networks, not {_kind(raw)}")
        else:
            lines = raw.item_lines if isinstance(raw, _Seq) else []
            for i, item in enumerate(raw):
                item_line = lines[i] if i < len(lines) else sec.line("trusted")
                if not isinstance(item, str):
                    ck.error(f"sip.trusted[{i}]", f"must be a CIDR string such as "
                             f"10.0.0.0/8, not {_kind(item)}", item_line)
                    continue
                try:
                    trusted.append(ipaddress.ip_network(item.strip(), strict=True))
                except ValueError as e:
                    ck.error(f"sip.trusted[{i}]", f"invalid CIDR: {e}", item_line)
            if not raw:
                sec.warn("trusted", "is empty: every INVITE will be rejected")
    user_agent = sec.string("user_agent")
    max_size = sec.integer("max_message_size", minimum=1024, maximum=65535)
    max_calls = sec.integer("max_calls", minimum=0)
    max_call_rate = sec.number("max_call_rate", minimum=0, inclusive=False)
    retry_after = sec.integer("retry_after", minimum=1, maximum=3600)
    flood = _parse_flood(sec, tuple(trusted))
    tls = _parse_tls(sec, base)
    connections = _parse_connections(sec)
    if listeners is not None and tls is None and not sec.has("tls") and any(
            item.transport is Transport.TLS for item in listeners):
        sec.error("listen", "a tls listener needs sip.tls (certificate and key)")
    if listen is None or listeners is None or flood is None or connections is None \
            or len(ck.report.errors) > before:
        return None
    host = advertised if advertised is not None else listen[0]
    return SipConfig(
        listen_host=listen[0], listen_port=listen[1], advertised_host=host,
        listeners=listeners, tls=tls, connections=connections,
        trusted=tuple(trusted), user_agent=user_agent.strip() if user_agent else "ccswitch",
        max_message_size=max_size if max_size is not None else 65535,
        admission=AdmissionConfig(max_calls=max_calls, max_call_rate=max_call_rate,
                                  retry_after=5 if retry_after is None else retry_after),
        flood=flood)


def _parse_listeners(sip: _Section) -> tuple[Listener, ...] | None:
    """``sip.listen``: ``host:port`` (UDP only, the old form) or a list of
    ``{transport, address, port}``, one per transport, UDP among them (the first UDP
    one is the address in our Via and Contact)."""
    raw = sip.data.get("listen")
    if isinstance(raw, str):
        listen = _listen(sip, "listen")
        if listen is None:
            return None
        return (Listener(transport=Transport.UDP, host=listen[0], port=listen[1]),)
    if not isinstance(raw, list) or not raw:
        sip.error("listen", "must be host:port or a list of {transport, address, port}, "
                  f"not {_kind(raw)}")
        return None
    ck = sip.ck
    before = len(ck.report.errors)
    lines = raw.item_lines if isinstance(raw, _Seq) else []
    listeners: list[Listener] = []
    for i, item in enumerate(raw):
        path = f"{sip.key('listen')}[{i}]"
        item_line = lines[i] if i < len(lines) else sip.line("listen")
        sec = _section(ck, item, path, item_line, allowed=("transport", "address", "port"),
                       required=("transport", "address", "port"),
                       what="a mapping with transport, address and port")
        if sec is None:
            continue
        name = sec.data.get("transport")
        if name not in TRANSPORTS:
            sec.error("transport", f"unknown transport {name!r}; use one of "
                      f"{', '.join(TRANSPORTS)}")
            continue
        transport = Transport(name)
        address = sec.string("address", what="an IP address")
        port = sec.integer("port", minimum=0, maximum=65535)
        if address is None or port is None:
            continue
        address = address.strip()
        if address.startswith("[") and address.endswith("]"):
            address = address[1:-1]
        try:
            _parse_ip(address)
        except ValueError as e:
            sec.error("address", str(e))
            continue
        if any(other.transport is transport for other in listeners):
            sec.error("transport", f"a second {transport.value} listener (one per "
                      "transport)")
            continue
        listeners.append(Listener(transport=transport, host=address, port=port))
    if len(ck.report.errors) > before:
        return None
    listeners.sort(key=lambda item: item.transport is not Transport.UDP)
    if listeners[0].transport is not Transport.UDP:
        sip.error("listen", "needs a udp listener (SIP over UDP stays the default "
                  "transport)")
        return None
    return tuple(listeners)


def _parse_tls(sip: _Section, base: Path) -> TlsConfig | None:
    """``sip.tls``: certificate, key, ca and verify_client; the files are read and the
    key checked against the certificate now, so a bad file fails ``ccswitch check``."""
    if sip.data.get("tls") is None:
        return None
    sec = _section(sip.ck, sip.data["tls"], sip.key("tls"), sip.line("tls"),
                   allowed=("certificate", "key", "ca", "verify_client"),
                   required=("certificate", "key"))
    if sec is None:
        return None
    identity = _tls_identity(sec, base)
    ca: Path | None = None
    if sec.has("ca"):
        text = sec.string("ca", what="a PEM file of CA certificates")
        if text is None:
            return None
        ca = _resolve(base, text)
        try:
            load_ca(ca)
        except TlsSetupError as e:
            sec.error("ca", e.reason)
            return None
    verify = sec.data.get("verify_client", ClientVerify.NONE.value)
    if verify not in CLIENT_VERIFY:
        sec.error("verify_client", f"must be one of {', '.join(CLIENT_VERIFY)}, "
                  f"got {verify!r}")
        return None
    if verify != ClientVerify.NONE.value and ca is None:
        sec.error("verify_client", "checking client certificates needs ca (the CAs "
                  "they must come from)")
        return None
    if identity is None:
        return None
    return TlsConfig(identity=identity, ca=ca, verify_client=ClientVerify(verify))


def _parse_connections(sip: _Section) -> ConnectionLimits | None:
    """``sip.connections``: idle_timeout and max_per_source for TCP and TLS."""
    if sip.data.get("connections") is None:
        return ConnectionLimits()
    sec = _section(sip.ck, sip.data["connections"], sip.key("connections"),
                   sip.line("connections"), allowed=("idle_timeout", "max_per_source"))
    if sec is None:
        return None
    before = len(sip.ck.report.errors)
    idle = sec.number("idle_timeout", minimum=0, inclusive=False)
    most = sec.integer("max_per_source", minimum=1)
    if len(sip.ck.report.errors) > before:
        return None
    return ConnectionLimits(idle_timeout=120.0 if idle is None else idle,
                            max_per_source=32 if most is None else most)


def _check_uri_transports(ck: _Checker, sip: SipConfig, dialplan: Dialplan,
                          line: int) -> None:
    """Every agent and trunk URI must name a transport this node listens on: a ``sips:``
    or ``;transport=tls`` URI needs a tls listener (and so sip.tls)."""
    available = frozenset(item.transport for item in sip.listeners) or frozenset(
        {Transport.UDP})
    uris = [(f"agents.{a.id}.uri", a.uri) for a in dialplan.agents.values()]
    uris += [(f"vendors.{v.name}.trunks[{i}]", uri) for v in dialplan.vendors.values()
             for i, uri in enumerate(v.trunks)]
    for key, text in uris:
        try:
            select_transport(SipURI.parse(text), 0, available=available)
        except SipParseError:
            continue  # reported by the dialplan loader
        except ValueError as e:
            ck.error(key, f"{text!r}: {e} (see sip.listen and sip.tls)", line)


def _parse_flood(sip: _Section, trusted: tuple[IPNetwork, ...]) -> GuardConfig | None:
    """``sip.flood``: per-source limits. The trusted networks are always exempt (a
    spoofed flood must not get the PBX banned), plus any listed under ``exempt``."""
    if sip.data.get("flood") is None:
        return GuardConfig(exempt=trusted)
    sec = _section(sip.ck, sip.data["flood"], sip.key("flood"), sip.line("flood"),
                   allowed=("rate", "burst", "ban_after", "ban_seconds", "exempt",
                            "scanner_agents"))
    if sec is None:
        return None
    before = len(sip.ck.report.errors)
    fields: dict[str, Any] = {}
    for name, value in (("rate", sec.number("rate", minimum=0, inclusive=False)),
                        ("burst", sec.integer("burst", minimum=1)),
                        ("ban_after", sec.integer("ban_after", minimum=1)),
                        ("ban_seconds", sec.number("ban_seconds", minimum=0, inclusive=False))):
        if value is not None:
            fields[name] = value
    exempt = list(trusted)
    for i, item in enumerate(sec.data.get("exempt") or ()):
        try:
            exempt.append(ipaddress.ip_network(str(item).strip(), strict=True))
        except ValueError as e:
            sip.ck.error(f"{sec.key('exempt')}[{i}]", f"invalid CIDR: {e}", sec.line("exempt"))
    if sec.has("scanner_agents"):
        agents = sec.data["scanner_agents"]
        if not isinstance(agents, list) or not all(isinstance(a, str) and a for a in agents):
            sec.error("scanner_agents", "must be a list of User-Agent substrings")
        else:
            fields["scanner_agents"] = tuple(agents)
    if len(sip.ck.report.errors) > before:
        return None
    try:
        return GuardConfig(exempt=tuple(exempt), **fields)
    except ValueError as e:
        sip.error("flood", str(e))
        return None


def _parse_rtp(ck: _Checker, value: object, line: int) -> RtpConfig | None:
    sec = _section(ck, value, "rtp", line, allowed=("address", "ports", "timeout"),
                   required=("address", "ports"))
    if sec is None:
        return None
    address = sec.string("address", what="an IP address")
    ports = sec.string("ports", what="a port range such as 20000-29999")
    timeout = sec.number("timeout", minimum=0, inclusive=True)
    ok = address is not None and ports is not None and (
        timeout is not None or not sec.has("timeout"))
    if address is not None:
        try:
            if _parse_ip(address.strip()).is_unspecified:
                sec.error("address", f"{address} is a wildcard; RTP needs the concrete "
                          "address that is sent to phones in SDP")
                ok = False
        except ValueError as e:
            sec.error("address", str(e))
            ok = False
    port_min = port_max = 0
    if ports is not None:
        match = _PORT_RANGE.fullmatch(ports)
        if match is None:
            sec.error("ports", f"must be a range like 20000-29999, got {ports!r}")
            ok = False
        else:
            port_min, port_max = int(match.group(1)), int(match.group(2))
            if not (1 <= port_min <= 65535 and 1 <= port_max <= 65535):
                sec.error("ports", "ports must be between 1 and 65535")
                ok = False
            elif port_min % 2:
                sec.error("ports", f"must start on an even port (RTP even, RTCP odd), "
                          f"got {port_min}")
                ok = False
            elif port_max - port_min < 1:
                sec.error("ports", "range must hold at least 2 ports")
                ok = False
    if not ok or address is None:
        return None
    return RtpConfig(address=address.strip(), port_min=port_min, port_max=port_max,
                     timeout=60.0 if timeout is None else timeout)


def _parse_http(ck: _Checker, value: object, line: int, base: Path) -> HttpConfig | None:
    sec = _section(ck, value, "http", line,
                   allowed=("listen", "api_token_file", "recording_key"), required=("listen",))
    if sec is None:
        return None
    listen = _listen(sec, "listen")
    token_file: Path | None = None
    text = sec.string("api_token_file", what="a file path")
    if text is not None:
        token_file = _resolve(base, text)
        problem = _token_problem(token_file)
        if problem is not None:
            sec.error("api_token_file", problem)
            return None
        if token_file.stat().st_mode & 0o077:
            sec.warn("api_token_file", f"{_display(token_file)} is readable by other users; "
                     "chmod 600 it")
    recording_key: Path | None = None
    text = sec.string("recording_key", what="a file path")
    if text is not None:
        recording_key = _resolve(base, text)
        problem = _private_key_problem(recording_key)
        if problem is not None:
            sec.error("recording_key", problem)
            return None
    if listen is None:
        return None
    return HttpConfig(listen_host=listen[0], listen_port=listen[1], api_token_file=token_file,
                      recording_key=recording_key)


def _private_key_problem(path: Path) -> str | None:
    """Why ``path`` is no usable private key for sealed recordings (never quoting it)."""
    try:
        if path.stat().st_mode & 0o077:
            return f"{_display(path)} is readable by other users; chmod 600 it"
        load_private_key(path.read_bytes())
    except OSError as e:
        return f"cannot read {_display(path)}: {e.strerror}"
    except SealedError as e:
        return f"{_display(path)}: {e}"
    return None


def _parse_encrypt(ck: _Checker, value: object, line: int, base: Path
                   ) -> tuple[Path, X25519PublicKey] | None:
    """``recordings.encrypt``: the X25519 public key recordings are sealed to."""
    sec = _section(ck, value, "recordings.encrypt", line, allowed=("public_key",),
                   required=("public_key",))
    if sec is None:
        return None
    text = sec.string("public_key", what="a file path")
    if text is None:
        return None
    path = _resolve(base, text)
    try:
        return path, load_public_key(path.read_bytes())
    except OSError as e:
        sec.error("public_key", f"cannot read {_display(path)}: {e.strerror}")
    except SealedError as e:
        sec.error("public_key", f"{_display(path)}: {e} (make one with ccswitch keygen)")
    return None


def _parse_recordings(ck: _Checker, value: object, line: int, base: Path
                      ) -> RecordingConfig | None:
    sec = _section(ck, value, "recordings", line,
                   allowed=("directory", "compressed_copy", "start", "hold_audio", "encrypt"),
                   required=("directory",))
    if sec is None:
        return None
    text = sec.string("directory", what="a directory path")
    fmt = sec.data.get("compressed_copy")
    ok = text is not None
    if fmt is not None and fmt not in COMPRESSED_FORMATS:
        sec.error("compressed_copy", f"must be null or one of {', '.join(COMPRESSED_FORMATS)}, "
                  f"got {fmt!r}")
        ok = False
    start = sec.data.get("start", RecordingStart.AFTER_NOTICE.value)
    if start not in RECORDING_STARTS:
        sec.error("start", f"must be one of {', '.join(RECORDING_STARTS)}, got {start!r}")
        ok = False
    hold_audio = sec.data.get("hold_audio", HoldAudio.MOH.value)
    if hold_audio not in HOLD_AUDIOS:
        sec.error("hold_audio", f"must be one of {', '.join(HOLD_AUDIOS)}, got {hold_audio!r}")
        ok = False
    sealing = None
    if sec.has("encrypt") and sec.data.get("encrypt") is not None:
        sealing = _parse_encrypt(ck, sec.data["encrypt"], sec.line("encrypt"), base)
        ok = ok and sealing is not None
    if text is None:
        return None
    directory = _resolve(base, text)
    if directory.exists() and not directory.is_dir():
        sec.error("directory", f"{_display(directory)} exists and is not a directory")
        ok = False
    if not ok:
        return None
    return RecordingConfig(directory=directory, compressed_format=fmt,
                           start=RecordingStart(start), hold_audio=HoldAudio(hold_audio),
                           public_key_file=None if sealing is None else sealing[0],
                           public_key=None if sealing is None else sealing[1])


def _parse_cdr(ck: _Checker, value: object, line: int, base: Path,
               recordings: RecordingConfig | None) -> CdrConfig | None:
    """``cdr:`` (optional): the database, a SQLite file path (default: cdr.sqlite in the
    recordings directory) or a PostgreSQL URL shared by the nodes, checked here without
    connecting; and an optional JSON-lines copy. With a URL the node keeps its own files
    (the record spool among them) in the recordings directory."""
    if value is None:
        if recordings is None:
            return None
        return CdrConfig(database=recordings.directory / "cdr.sqlite")
    sec = _section(ck, value, "cdr", line, allowed=("database", "jsonl"))
    if sec is None:
        return None
    ok = True
    url: str | None = None
    paths: dict[str, Path | None] = {"database": None, "jsonl": None}
    for key in paths:
        if not sec.has(key) or sec.data.get(key) is None:
            continue
        text = sec.string(key, what="a file path" if key == "jsonl"
                          else "a file path or a postgresql:// URL")
        if text is None:
            ok = False
            continue
        if key == "database" and is_url(text.strip()):
            try:
                check_database_url(text.strip())
            except ValueError as e:
                sec.error(key, str(e))
                ok = False
            url = text.strip()
            continue
        path = _resolve(base, text)
        if path.exists() and not path.is_file():
            sec.error(key, f"{_display(path)} exists and is not a file")
            ok = False
        paths[key] = path
    if not ok or recordings is None:
        return None
    if url is not None:
        return CdrConfig(database=url, jsonl=paths["jsonl"], directory=recordings.directory)
    return CdrConfig(database=paths["database"] or recordings.directory / "cdr.sqlite",
                     jsonl=paths["jsonl"])


def _parse_state(sec: _Section) -> str | None:
    """``state``: ``embedded`` (one node) or a Redis URL shared by every node of the
    center: ``redis://[:password@]host:port/db``, ``rediss://...`` (TLS) or
    ``redis+sentinel://host1:port1,host2:port2/service/db``."""
    if not sec.has("state"):
        return StateKind.EMBEDDED.value
    state = sec.string("state", what="'embedded' or a redis:// URL")
    if state is None:
        return None
    state = state.strip()
    if state in STATE_BACKENDS:
        return state
    if state.startswith(REDIS_SCHEMES):
        try:
            check_url(state)
        except StateUrlError as e:
            sec.error("state", str(e))
            return None
        return state
    sec.error("state", f"unknown state backend {state!r}; use 'embedded' or a URL starting "
              f"with {', '.join(REDIS_SCHEMES)}")
    return None


REDIS_SCHEMES: Final = ("redis://", "rediss://", "redis+sentinel://")


def _check_port_clash(ck: _Checker, sip: SipConfig, rtp: RtpConfig, line: int) -> None:
    """The SIP UDP port must not fall inside the RTP range on the same address."""
    same_host = (sip.listen_host == rtp.address
                 or ipaddress.ip_address(sip.listen_host).is_unspecified)
    if same_host and rtp.port_min <= sip.listen_port <= rtp.port_max:
        ck.error("rtp.ports", f"range {rtp.port_min}-{rtp.port_max} contains the SIP port "
                 f"{sip.listen_port}", line)


def _check(path: Path) -> tuple[Config | None, _Report]:
    report = _Report()
    ck = _Checker(str(path), report)
    data = ck.read_yaml(path)
    if isinstance(data, _Failed):
        return None, report
    top = _section(ck, data, "", 1, what="a mapping with sip, rtp, http, recordings, dialplans",
                   allowed=("sip", "rtp", "http", "recordings", "cdr", "dialplans", "state",
                            "node", "hold_ttl", "portal"),
                   required=("sip", "rtp", "http", "recordings", "dialplans"))
    if top is None:
        return None, report
    base = path.absolute().parent
    sip = _parse_sip(ck, top.data["sip"], top.line("sip"), base) if top.has("sip") else None
    rtp = _parse_rtp(ck, top.data["rtp"], top.line("rtp")) if top.has("rtp") else None
    http = (_parse_http(ck, top.data["http"], top.line("http"), base) if top.has("http")
            else None)
    recordings = (_parse_recordings(ck, top.data["recordings"], top.line("recordings"), base)
                  if top.has("recordings") else None)
    cdr = _parse_cdr(ck, top.data.get("cdr"), top.line("cdr") if top.has("cdr") else 1,
                     base, recordings)
    state = _parse_state(top)
    portal_value = top.data.get("portal")
    if top.has("portal") and portal_value is None:
        # ``portal:`` with every key commented out: on, with the defaults.
        portal_value = _Map(top.line("portal"))
    portal = parse_portal(ck, portal_value, top.line("portal") if top.has("portal")
                          else 1, base, cdr,
                          api_token=http is not None and http.api_token_file is not None)
    hold_ttl = top.number("hold_ttl", minimum=1, inclusive=True)
    node = top.string("node", what="a node name")
    if node is not None and not _NAME.fullmatch(node):
        top.error("node", "must be 1-64 letters, digits, '_', '-' or '.'")
        node = None
    if sip is not None and rtp is not None:
        _check_port_clash(ck, sip, rtp, top.line("rtp"))
    dialplan_dir: Path | None = None
    dialplan: Dialplan | None = None
    text = top.string("dialplans", what="a directory path")
    if text is not None:
        dialplan_dir = _resolve(base, text)
        dialplan = _load_dir(dialplan_dir, report, ck, "dialplans", top.line("dialplans"))
    if sip is not None and dialplan is not None:
        _check_uri_transports(ck, sip, dialplan, top.line("dialplans"))
    if (report.errors or sip is None or rtp is None or http is None or recordings is None
            or cdr is None or state is None or dialplan_dir is None or dialplan is None
            or (portal_value is not None and portal is None)):
        return None, report
    return Config(sip=sip, rtp=rtp, http=http, recordings=recordings, cdr=cdr,
                  dialplan_dir=dialplan_dir, dialplan=dialplan, state=state,
                  node=node or f"{socket.gethostname()}-{sip.listen_port}",
                  hold_ttl=15.0 if hold_ttl is None else hold_ttl, portal=portal,
                  source=path.absolute()), report


def check_config(path: Path) -> CheckResult:
    """Load and validate the service config and every dialplan; never raises for bad input."""
    config, report = _check(Path(path))
    return CheckResult(config=config if not report.errors else None,
                       errors=report.errors, warnings=report.warnings)


def load_config(path: Path) -> Config:
    """The service config at ``path`` with its dialplans; raises ConfigErrors listing every problem."""
    config, report = _check(Path(path))
    return _raise_or(config, report)
