"""Sans-I/O SIP message codec (RFC 3261 sections 7, 8.2.6, 18, 19, 20, 25).

Parses datagrams into :class:`Request` / :class:`Response` values and renders
them back to bytes. Nothing here touches the network or the clock; the
transport decides what to do with a :class:`~ccswitch.errors.SipParseError`.
"""

from __future__ import annotations

import re
import secrets
from typing import Iterable, Iterator, Union

import attrs

from ccswitch.errors import SipParseError

__all__ = [
    "Headers", "SipURI", "AbsoluteURI", "NameAddr", "Via", "Request", "Response", "Message",
    "parse_message", "make_response", "salvage_response", "new_branch", "new_tag",
    "new_call_id",
    "REASONS", "BRANCH_MAGIC", "canonical_name",
]

BRANCH_MAGIC = "z9hG4bK"
SIP_VERSION = "SIP/2.0"

Params = tuple[tuple[str, Union[str, None]], ...]

# -- header names ----------------------------------------------------------

_COMPACT = {
    "i": "call-id", "m": "contact", "f": "from", "t": "to", "v": "via",
    "l": "content-length", "c": "content-type", "k": "supported", "s": "subject",
    "e": "content-encoding", "o": "event", "u": "allow-events", "r": "refer-to",
    "b": "referred-by", "x": "session-expires", "a": "accept-contact",
    "j": "reject-contact", "d": "request-disposition", "y": "identity",
    "n": "identity-info",
}

_CANONICAL_NAMES = (
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow",
    "Allow-Events", "Authentication-Info", "Authorization", "Call-ID", "Call-Info",
    "Contact", "Content-Disposition", "Content-Encoding", "Content-Language",
    "Content-Length", "Content-Type", "CSeq", "Date", "Diversion", "Error-Info", "Event",
    "Expires", "From", "History-Info", "Identity", "Identity-Info", "In-Reply-To",
    "Max-Forwards", "MIME-Version", "Min-Expires", "Min-SE", "Organization",
    "P-Asserted-Identity", "P-Preferred-Identity", "Path", "Priority", "Privacy",
    "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "RAck", "Reason",
    "Record-Route", "Refer-To", "Referred-By", "Reject-Contact", "Remote-Party-ID",
    "Replaces", "Reply-To", "Request-Disposition", "Require", "Retry-After", "Route",
    "RSeq", "Server", "Service-Route", "Session-Expires", "Subject", "Subscription-State",
    "Supported", "Timestamp", "To", "Unsupported", "User-Agent", "Via", "Warning",
    "WWW-Authenticate",
)
_CANONICAL = {name.lower(): name for name in _CANONICAL_NAMES}

# Headers whose values are comma-separated lists (RFC 3261 7.3.1).
_LIST_HEADERS = frozenset({
    "via", "route", "record-route", "contact", "allow", "supported", "require",
    "proxy-require", "unsupported", "accept", "accept-encoding", "accept-language",
    "allow-events", "content-encoding", "path", "service-route", "in-reply-to",
})

_key_cache: dict[str, str] = {}


def _key(name: str) -> str:
    """The lookup key of a header name: lower case, compact forms expanded."""
    key = _key_cache.get(name)
    if key is None:
        lower = name.strip().lower()
        key = _COMPACT.get(lower, lower)
        if len(_key_cache) < 4096:
            _key_cache[name] = key
    return key


def canonical_name(name: str) -> str:
    """How a header name is written on the wire (``call-id`` -> ``Call-ID``, ``v`` -> ``Via``)."""
    key = _key(name)
    return _CANONICAL.get(key, name.strip())


def _split_outside(value: str, sep: str) -> list[str]:
    """Split on ``sep`` outside double quotes and ``<...>``; parts stripped, empties kept."""
    if sep not in value:
        return [value.strip()]
    if '"' not in value and "<" not in value:
        return [part.strip() for part in value.split(sep)]
    parts: list[str] = []
    start = 0
    quoted = False
    angle = 0
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            angle += 1
        elif ch == ">":
            if angle:
                angle -= 1
        elif ch == sep and not angle:
            parts.append(value[start:i].strip())
            start = i + 1
        i += 1
    parts.append(value[start:].strip())
    return parts


def _split_list(value: str) -> list[str]:
    return [part for part in _split_outside(value, ",") if part]


class Headers:
    """Ordered multi-map of SIP headers with case-insensitive, compact-aware names."""

    __slots__ = ("_items",)
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        # Each entry: (lookup key, wire name, value).
        self._items: list[tuple[str, str, str]] = []
        for name, value in items:
            self.add(name, value)

    @staticmethod
    def _check(name: str, value: str) -> None:
        if not name or any(c in name for c in " \t\r\n:"):
            raise ValueError(f"invalid header name {name!r}")
        if "\r" in value or "\n" in value:
            raise ValueError(f"header {name} value contains a line break")

    def get(self, name: str) -> str | None:
        """The first value of ``name`` (as stored, not list-split), or None."""
        key = _key(name)
        for k, _, v in self._items:
            if k == key:
                return v
        return None

    def values(self, name: str) -> list[str]:
        """Every stored value of ``name`` in order, without list splitting."""
        key = _key(name)
        return [v for k, _, v in self._items if k == key]

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``; list-valued headers (Via, Route, Contact...) are split."""
        key = _key(name)
        if key in _LIST_HEADERS:
            out: list[str] = []
            for k, _, v in self._items:
                if k == key:
                    out.extend(_split_list(v))
            return out
        return [v for k, _, v in self._items if k == key]

    def set(self, name: str, value: str) -> None:
        """Replace every value of ``name`` with ``value`` (at the first one's position)."""
        self._check(name, value)
        key = _key(name)
        entry = (key, _CANONICAL.get(key, name.strip()), value)
        out: list[tuple[str, str, str]] = []
        placed = False
        for e in self._items:
            if e[0] != key:
                out.append(e)
            elif not placed:
                out.append(entry)
                placed = True
        if not placed:
            out.append(entry)
        self._items = out

    def add(self, name: str, value: str, *, first: bool = False) -> None:
        """Append a value; ``first=True`` puts it before every other value of ``name``
        (at the very top when there is none), as a proxy does with Via."""
        self._check(name, value)
        key = _key(name)
        entry = (key, _CANONICAL.get(key, name.strip()), value)
        if first:
            for i, (k, _, _) in enumerate(self._items):
                if k == key:
                    self._items.insert(i, entry)
                    return
            self._items.insert(0, entry)
        else:
            self._items.append(entry)

    def remove(self, name: str) -> None:
        """Drop every value of ``name`` (no error when absent)."""
        key = _key(name)
        self._items = [e for e in self._items if e[0] != key]

    def items(self) -> list[tuple[str, str]]:
        """(canonical name, value) pairs in wire order."""
        return [(n, v) for _, n, v in self._items]

    def copy(self) -> Headers:
        new = Headers()
        new._items = list(self._items)
        return new

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = _key(name)
        return any(k == key for k, _, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(k, v) for k, _, v in self._items] == [(k, v) for k, _, v in other._items]

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"


# -- small lexical helpers ---------------------------------------------------

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
_HOST_RE = re.compile(r"[A-Za-z0-9\-._~%]+")
_IPV6_RE = re.compile(r"\[[0-9A-Fa-f:.]+(%[A-Za-z0-9\-._~]+)?\]")
_URI_BAD_RE = re.compile(r'[\s<>"]')


def _is_token(text: str) -> bool:
    return _TOKEN_RE.fullmatch(text) is not None


def _uint(text: str, what: str, maximum: int, status: int = 400) -> int:
    if not text or len(text) > 10 or not text.isascii() or not text.isdigit():
        raise SipParseError(f"bad {what}: {text[:40]!r}", status)
    value = int(text)
    if value > maximum:
        raise SipParseError(f"{what} out of range: {text}", status)
    return value


def _parse_hostport(text: str, what: str) -> tuple[str, int | None]:
    """``host[:port]`` with IPv6 references kept in brackets."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipParseError(f"bad {what} host: {text[:60]!r}")
        host = text[:end + 1]
        if _IPV6_RE.fullmatch(host) is None:
            raise SipParseError(f"bad {what} host: {host[:60]!r}")
        rest = text[end + 1:]
        if not rest:
            return host, None
        if rest[0] != ":":
            raise SipParseError(f"bad {what} host: {text[:60]!r}")
        return host, _uint(rest[1:], f"{what} port", 65535)
    host, colon, port = text.partition(":")
    if not host or _HOST_RE.fullmatch(host) is None:
        raise SipParseError(f"bad {what} host: {text[:60]!r}")
    if not colon:
        return host, None
    return host, _uint(port, f"{what} port", 65535)


def _parse_params(parts: list[str], what: str) -> Params:
    """``name[=value]`` segments (already split on ';'); empty segments are skipped."""
    out: list[tuple[str, str | None]] = []
    for part in parts:
        if not part:
            continue
        name, eq, value = part.partition("=")
        name = name.strip()
        if not name or not _is_token(name):
            raise SipParseError(f"bad {what} parameter: {part[:60]!r}")
        out.append((name, value.strip() if eq else None))
    return tuple(out)


def _find_param(params: Params, name: str) -> str | None:
    lname = name.lower()
    for key, value in params:
        if key.lower() == lname:
            return value
    return None


def _has_param(params: Params, name: str) -> bool:
    lname = name.lower()
    return any(key.lower() == lname for key, _ in params)


def _replace_param(params: Params, name: str, value: str | None) -> Params:
    lname = name.lower()
    out = [(k, v) for k, v in params if k.lower() != lname]
    out.append((name, value))
    return tuple(out)


def _render_params(params: Params) -> str:
    if not params:
        return ""
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


def _strip_brackets(host: str) -> str:
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1]
    return host


def _bracket(host: str) -> str:
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


# -- URIs and addresses ------------------------------------------------------

@attrs.frozen(kw_only=True)
class SipURI:
    """A sip: or sips: URI (RFC 3261 19.1). IPv6 hosts are kept in brackets."""

    scheme: str = "sip"
    user: str | None = None
    password: str | None = None
    host: str
    port: int | None = None
    params: Params = ()
    headers: str | None = None

    @classmethod
    def parse(cls, text: str) -> SipURI:
        """Parse a URI; 416 for a well-formed but unsupported scheme, 400 otherwise."""
        text = text.strip()
        scheme, colon, rest = text.partition(":")
        if scheme == "sip" or scheme == "sips":
            lscheme = scheme
        else:
            if not colon or _SCHEME_RE.fullmatch(scheme) is None:
                raise SipParseError(f"bad URI: {text[:80]!r}")
            lscheme = scheme.lower()
            if lscheme not in ("sip", "sips"):
                raise SipParseError(f"Unsupported URI Scheme: {scheme[:20]}", 416)
        if not rest or _URI_BAD_RE.search(rest) is not None:
            raise SipParseError(f"bad URI: {text[:80]!r}")
        rest, qmark, headers = rest.partition("?")
        user: str | None = None
        password: str | None = None
        at = rest.rfind("@")
        if at >= 0:
            userinfo = rest[:at]
            rest = rest[at + 1:]
            if not userinfo:
                raise SipParseError(f"bad URI user: {text[:80]!r}")
            user, pcolon, pw = userinfo.partition(":")
            if pcolon:
                password = pw
            if not user:
                raise SipParseError(f"bad URI user: {text[:80]!r}")
        hostport, _, param_text = rest.partition(";")
        host, port = _parse_hostport(hostport, "URI")
        params: Params = ()
        if param_text:
            params = _parse_params(param_text.split(";"), "URI")
        return cls(scheme=lscheme, user=user, password=password, host=host, port=port,
                   params=params, headers=headers if qmark else None)

    def param(self, name: str) -> str | None:
        """A URI parameter's value (None when absent or valueless, e.g. ``lr``)."""
        return _find_param(self.params, name)

    def has_param(self, name: str) -> bool:
        """Whether a URI parameter is present at all (``;lr`` has no value)."""
        return _has_param(self.params, name)

    def host_port(self, default_port: int = 5060) -> tuple[str, int]:
        """Where to send: host without IPv6 brackets, port or ``default_port``."""
        return _strip_brackets(self.host), self.port if self.port is not None else default_port

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":")
                out.append(self.password)
            out.append("@")
        out.append(_bracket(self.host))
        if self.port is not None:
            out.append(f":{self.port}")
        if self.params:
            out.append(_render_params(self.params))
        if self.headers is not None:
            out.append("?")
            out.append(self.headers)
        return "".join(out)


@attrs.frozen(kw_only=True)
class AbsoluteURI:
    """A URI of another scheme (``tel:``, ``http:``, ``urn:``...), kept as text.

    Legal in From and To (RFC 3261 20.20, 20.39: any absoluteURI); ccswitch sends
    requests only to sip:/sips: URIs, so it is never a Request-URI, Contact or route.
    """

    scheme: str
    rest: str  # everything after "scheme:"

    @classmethod
    def parse(cls, text: str) -> AbsoluteURI:
        scheme, colon, rest = text.partition(":")
        if not colon or _SCHEME_RE.fullmatch(scheme) is None or not rest \
                or _URI_BAD_RE.search(rest) is not None:
            raise SipParseError(f"bad URI: {text[:80]!r}")
        return cls(scheme=scheme.lower(), rest=rest)

    @property
    def user(self) -> str | None:
        """The number of a tel: URI (RFC 3966, parameters dropped); None for other schemes."""
        if self.scheme != "tel":
            return None
        return self.rest.partition(";")[0] or None

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"


def _addr_spec(text: str) -> SipURI | AbsoluteURI:
    """The URI of a name-addr or addr-spec: a SipURI for sip:/sips:, else an AbsoluteURI."""
    if text.partition(":")[0].lower() in ("sip", "sips"):
        return SipURI.parse(text)
    return AbsoluteURI.parse(text)


def _unquote(text: str) -> tuple[str, int]:
    """Read a quoted string starting at text[0] == '"'; returns (content, index after)."""
    close = text.find('"', 1)
    if close > 0 and "\\" not in text[1:close]:
        return text[1:close], close + 1
    out: list[str] = []
    i = 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            if i + 1 >= n:
                break
            out.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise SipParseError(f"unterminated quoted string: {text[:60]!r}")


@attrs.frozen(kw_only=True)
class NameAddr:
    """A From/To/Contact/Route value: optional display name, URI, header params.

    ``uri`` is an :class:`AbsoluteURI` only for a scheme other than sip/sips, legal in
    From and To; :attr:`sip_uri` is for the values ccswitch routes on.
    """

    uri: SipURI | AbsoluteURI
    display: str | None = None
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        """``"Name" <uri>;p=v``, ``Name <uri>`` or bare ``uri;p=v`` (params are header params)."""
        text = text.strip()
        display: str | None = None
        if text.startswith('"'):
            display, end = _unquote(text)
            text = text[end:].lstrip()
            if not text.startswith("<"):
                raise SipParseError(f"bad name-addr: {text[:80]!r}")
        lt = text.find("<")
        if lt >= 0:
            if lt > 0:
                display = text[:lt].strip() or None
                if display is not None and '"' in display:
                    raise SipParseError(f"bad display name: {display[:60]!r}")
            gt = text.find(">", lt)
            if gt < 0:
                raise SipParseError(f"unterminated <uri>: {text[:80]!r}")
            inner = text[lt + 1:gt]
            if inner != inner.strip():  # LAQUOT addr-spec RAQUOT: no LWS inside (25.1)
                raise SipParseError(f"whitespace inside <uri>: {text[:80]!r}")
            uri = _addr_spec(inner)
            rest = text[gt + 1:].strip()
        else:
            uri_text, semi, rest = text.partition(";")
            uri = _addr_spec(uri_text.strip())
            rest = semi + rest
        params: Params = ()
        if rest:
            if rest[0] != ";":
                raise SipParseError(f"bad name-addr parameters: {rest[:60]!r}")
            params = _parse_params(_split_outside(rest[1:], ";"), "header")
        return cls(uri=uri, display=display, params=params)

    @property
    def sip_uri(self) -> SipURI:
        """The URI, when it is one ccswitch can send to; SipParseError (400) otherwise."""
        if not isinstance(self.uri, SipURI):
            raise SipParseError(f"not a SIP URI: {str(self.uri)[:80]!r}")
        return self.uri

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter (dialog identifier half), if any."""
        return _find_param(self.params, "tag")

    def param(self, name: str) -> str | None:
        return _find_param(self.params, name)

    def with_tag(self, tag: str) -> NameAddr:
        """The same address with ``tag`` set (replacing any existing tag)."""
        return attrs.evolve(self, params=_replace_param(self.params, "tag", tag))

    def __str__(self) -> str:
        uri = f"<{self.uri}>{_render_params(self.params)}"
        if self.display:
            return f'"{_QUOTE_RE.sub(_quote_pair, self.display)}" {uri}'
        return uri


# What a quoted string cannot hold as qdtext, escaped as a quoted-pair (RFC 3261 25.1).
_QUOTE_RE = re.compile(r'["\\\x00-\x08\x0b\x0c\x0e-\x1f\x7f]')


def _quote_pair(match: re.Match[str]) -> str:
    return "\\" + match.group()


_VIA_RE = re.compile(r"\s*([A-Za-z0-9\-.!%*_+`'~]+)\s*/\s*([A-Za-z0-9.]+)\s*/\s*"
                     r"([A-Za-z0-9\-.!%*_+`'~]+)\s+(\S.*?)\s*$", re.S)


@attrs.frozen(kw_only=True)
class Via:
    """One Via hop (RFC 3261 20.42, RFC 3581 rport). IPv6 hosts keep their brackets."""

    transport: str
    host: str
    port: int | None = None
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> Via:
        """Parse a single via-parm (split multi-value headers with ``Headers.get_all``)."""
        parts = _split_outside(text, ";")
        head = parts[0]
        protocol, space, sent_by = head.partition(" ")
        if (space and protocol[:8].upper() == "SIP/2.0/" and _is_token(protocol[8:])
                and " " not in sent_by and "\t" not in sent_by):
            transport = protocol[8:]  # the usual "SIP/2.0/UDP host:port" spelling
        else:
            m = _VIA_RE.match(head)
            if m is None:
                raise SipParseError(f"bad Via: {text[:80]!r}")
            name, version, transport, sent_by = m.groups()
            if name.upper() != "SIP" or version != "2.0":
                raise SipParseError(f"bad Via protocol: {text[:80]!r}")
            sent_by = sent_by.replace(" ", "").replace("\t", "")
        host, port = _parse_hostport(sent_by, "Via")
        params = _parse_params(parts[1:], "Via") if len(parts) > 1 else ()
        return cls(transport=transport.upper(), host=host, port=port, params=params)

    def param(self, name: str) -> str | None:
        return _find_param(self.params, name)

    @property
    def branch(self) -> str | None:
        return _find_param(self.params, "branch")

    @property
    def received(self) -> str | None:
        return _find_param(self.params, "received")

    @property
    def has_rport(self) -> bool:
        """Whether the ``rport`` parameter is present (with or without a value)."""
        return _has_param(self.params, "rport")

    @property
    def rport(self) -> int | None:
        """The numeric ``rport`` value, None when absent or valueless."""
        value = _find_param(self.params, "rport")
        if value is None or not value.isascii() or not value.isdigit() or len(value) > 5:
            return None
        return int(value)

    def with_param(self, name: str, value: str | None) -> Via:
        """The same Via with ``name`` set to ``value`` (replacing an existing one)."""
        return attrs.evolve(self, params=_replace_param(self.params, name, value))

    def default_port(self) -> int:
        return 5061 if self.transport in ("TLS", "WSS") else 5060

    def sent_by(self) -> tuple[str, int]:
        """The sent-by host (without IPv6 brackets) and port (transport default if absent)."""
        return _strip_brackets(self.host), self.port if self.port is not None else \
            self.default_port()

    def response_address(self) -> tuple[str, int]:
        """Where a response goes over UDP: ``received``/``rport`` when set, else sent-by."""
        host, port = self.sent_by()
        received = self.received
        if received:
            host = _strip_brackets(received)
        rport = self.rport
        if rport is not None:
            port = rport
        return host, port

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return f"SIP/2.0/{self.transport} {_bracket(self.host)}{port}{_render_params(self.params)}"


# -- messages ----------------------------------------------------------------

def _cseq(value: str) -> tuple[int, str]:
    parts = value.split()
    if len(parts) != 2:
        raise SipParseError(f"bad CSeq: {value[:60]!r}")
    number = _uint(parts[0], "CSeq number", 2**31 - 1)
    if not _is_token(parts[1]):
        raise SipParseError(f"bad CSeq method: {value[:60]!r}")
    return number, parts[1]


class _Parsed:
    """Parsed header values, each kept with the raw text it came from."""

    __slots__ = ("from_", "to", "cseq", "vias", "top_via")

    def __init__(self) -> None:
        self.from_: tuple[str, NameAddr] | None = None
        self.to: tuple[str, NameAddr] | None = None
        self.cseq: tuple[str, tuple[int, str]] | None = None
        self.vias: tuple[tuple[str, ...], list[Via]] | None = None
        self.top_via: tuple[str, Via] | None = None


class _Common:
    """Header-derived properties shared by requests and responses.

    Parse results are cached next to the raw header text, so a changed header is
    parsed again.
    """

    headers: Headers
    body: bytes
    _parsed: _Parsed

    @property
    def call_id(self) -> str:
        value = self.headers.get("Call-ID")
        if value is None:
            raise SipParseError("missing Call-ID")
        return value

    @property
    def cseq(self) -> tuple[int, str]:
        raw = self.headers.get("CSeq")
        if raw is None:
            raise SipParseError("missing CSeq")
        hit = self._parsed.cseq
        if hit is not None and hit[0] == raw:
            return hit[1]
        value = _cseq(raw)
        self._parsed.cseq = (raw, value)
        return value

    @property
    def from_(self) -> NameAddr:
        raw = self.headers.get("From")
        if raw is None:
            raise SipParseError("missing From")
        hit = self._parsed.from_
        if hit is not None and hit[0] == raw:
            return hit[1]
        value = NameAddr.parse(raw)
        self._parsed.from_ = (raw, value)
        return value

    @property
    def to(self) -> NameAddr:
        raw = self.headers.get("To")
        if raw is None:
            raise SipParseError("missing To")
        hit = self._parsed.to
        if hit is not None and hit[0] == raw:
            return hit[1]
        value = NameAddr.parse(raw)
        self._parsed.to = (raw, value)
        return value

    @property
    def vias(self) -> list[Via]:
        """Every Via hop, top first (multi-value headers split); [] when none."""
        raw = tuple(self.headers.values("Via"))
        hit = self._parsed.vias
        if hit is not None and hit[0] == raw:
            return list(hit[1])
        value = [Via.parse(part) for v in raw for part in _split_list(v)]
        self._parsed.vias = (raw, value)
        return list(value)

    @property
    def top_via(self) -> Via:
        raw = self.headers.get("Via")
        if raw is None:
            raise SipParseError("missing Via")
        hit = self._parsed.top_via
        if hit is not None and hit[0] == raw:
            return hit[1]
        first = _split_list(raw)
        if not first:
            raise SipParseError("empty Via")
        value = Via.parse(first[0])
        self._parsed.top_via = (raw, value)
        return value

    def _render(self, start_line: str) -> bytes:
        lines = [start_line]
        for key, name, value in self.headers._items:
            if key != "content-length":
                lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(self.body)}")
        lines.append("")
        lines.append("")
        # surrogateescape: the bytes that were not UTF-8 in a header a stateless answer
        # copies from an unparseable request (salvage_response) go back unchanged.
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + self.body


@attrs.define(kw_only=True)
class Request(_Common):
    """A SIP request."""

    method: str
    uri: SipURI
    headers: Headers
    body: bytes = b""
    _parsed: _Parsed = attrs.field(factory=_Parsed, init=False, repr=False, eq=False)

    def to_bytes(self) -> bytes:
        """Wire form; Content-Length always reflects ``body``."""
        return self._render(f"{self.method} {self.uri} {SIP_VERSION}")


@attrs.define(kw_only=True)
class Response(_Common):
    """A SIP response."""

    status: int
    reason: str
    headers: Headers
    body: bytes = b""
    _parsed: _Parsed = attrs.field(factory=_Parsed, init=False, repr=False, eq=False)

    def to_bytes(self) -> bytes:
        """Wire form; Content-Length always reflects ``body``."""
        return self._render(f"{SIP_VERSION} {self.status} {self.reason}")


Message = Union[Request, Response]

# -- parsing -----------------------------------------------------------------

_names: dict[str, tuple[str, str]] = {}


def _header_name(raw: str) -> tuple[str, str]:
    """(lookup key, wire name) for a header name as received; remembered when valid."""
    name = raw.rstrip(" \t")
    if _HEADER_NAME_RE.fullmatch(name) is None:
        raise SipParseError(f"bad header name: {raw[:60]!r}")
    key = _key(name)
    hit = (key, _CANONICAL.get(key, name))
    if len(_names) < 4096:
        _names[raw] = hit
    return hit


_MANDATORY = ("via", "from", "to", "call-id", "cseq")
_SINGLE = frozenset({"from", "to", "call-id", "cseq", "max-forwards", "content-length"})
_HEADER_NAME_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")


#: Limits on one message's head: far above what SIP peers send (a few dozen headers, a
#: few hundred characters each), low enough that a datagram full of tiny or huge header
#: lines is refused before any per-header work.
MAX_HEADER_LINES = 256
MAX_HEADER_LINE = 16384


def parse_message(data: bytes) -> Request | Response:
    """Parse one SIP message (one UDP datagram or one framed stream message).

    Raises :class:`SipParseError` (400, or 505 for another SIP version, 416 for an
    unsupported Request-URI scheme) and nothing else.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise SipParseError("not bytes")
    data = bytes(data)
    # Keep-alive CRLFs before the start line are ignored (RFC 3261 7.5).
    start = 0
    n = len(data)
    while start < n and data[start] in (13, 10):
        start += 1
    if start >= n:
        raise SipParseError("empty message")
    end_crlf = data.find(b"\n\r\n", start)
    end_lf = data.find(b"\n\n", start)
    if end_crlf < 0 and end_lf < 0:
        raise SipParseError("no blank line after headers")
    if end_lf < 0 or (0 <= end_crlf < end_lf):
        head_end, body_start = end_crlf, end_crlf + 3
    else:
        head_end, body_start = end_lf, end_lf + 2
    try:
        head = data[start:head_end].decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("header bytes are not UTF-8") from None
    if "\x00" in head and not _nuls_escaped_in_quotes(head):
        raise SipParseError("NUL byte in headers")
    lines = head.split("\r\n")
    nlines = len(lines) - 1
    if head.count("\r") != nlines or head.count("\n") != nlines:
        # LF-only or mixed line endings: accept LF, reject a CR anywhere but before LF.
        lines = [line[:-1] if line.endswith("\r") else line for line in head.split("\n")]
        if any("\r" in line for line in lines):
            raise SipParseError("stray CR in headers")
    if len(lines) > MAX_HEADER_LINES + 1:
        raise SipParseError(f"more than {MAX_HEADER_LINES} header lines")
    if max(map(len, lines)) > MAX_HEADER_LINE:
        raise SipParseError(f"a header line is longer than {MAX_HEADER_LINE} characters")
    start_line = lines[0]

    headers = Headers()
    items = headers._items
    counts: dict[str, int] = {}
    names = _names
    for i in range(1, len(lines)):
        line = lines[i]
        if line[:1] in (" ", "\t"):
            if not items:
                raise SipParseError("continuation line before any header")
            k, nm, v = items[-1]
            more = line.strip(" \t")
            if more:
                items[-1] = (k, nm, f"{v} {more}" if v else more)
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise SipParseError(f"bad header line: {line[:60]!r}")
        hit = names.get(name)
        if hit is None:
            hit = _header_name(name)
        key = hit[0]
        items.append((key, hit[1], value.strip(" \t")))
        counts[key] = counts.get(key, 0) + 1

    for key in _MANDATORY:
        if key not in counts:
            raise SipParseError(f"missing {_CANONICAL[key]} header")
    for key in _SINGLE:
        if counts.get(key, 0) > 1:
            raise SipParseError(f"more than one {_CANONICAL[key]} header")

    body = data[body_start:]
    length_text = headers.get("content-length")
    if length_text is not None:
        length = _uint(length_text, "Content-Length", 2**31 - 1)
        if length > len(body):
            raise SipParseError(f"Content-Length {length} exceeds the {len(body)} body bytes")
        if length < len(body):
            body = body[:length]

    message: Request | Response
    if start_line.startswith("SIP/"):
        version, _, rest = start_line.partition(" ")
        if version != SIP_VERSION:
            if re.fullmatch(r"SIP/\d+\.\d+", version) is None:
                raise SipParseError(f"bad status line: {start_line[:80]!r}")
            raise SipParseError(f"Version Not Supported: {version[:20]}", 505)
        code_text, _, reason = rest.partition(" ")
        if len(code_text) != 3:
            raise SipParseError(f"bad status code: {start_line[:80]!r}")
        status = _uint(code_text, "status code", 699)
        if status < 100:
            raise SipParseError(f"bad status code: {status}")
        message = Response(status=status, reason=reason.strip(), headers=headers, body=body)
    else:
        parts = start_line.split(" ")
        if len(parts) != 3:
            raise SipParseError(f"bad request line: {start_line[:80]!r}")
        method, uri_text, version = parts
        if not _is_token(method):
            raise SipParseError(f"bad method: {method[:40]!r}")
        if version != SIP_VERSION:
            if re.fullmatch(r"SIP/\d+\.\d+", version) is None:
                raise SipParseError(f"bad request line: {start_line[:80]!r}")
            raise SipParseError(f"Version Not Supported: {version[:20]}", 505)
        message = Request(method=method, uri=SipURI.parse(uri_text), headers=headers,
                          body=body)
        if message.cseq[1] != method:
            raise SipParseError(f"CSeq method {message.cseq[1]!r} does not match {method}")

    # Validate what every layer relies on; the parsed values stay cached.
    message.cseq
    message.from_
    message.to
    vias = message.vias
    if not vias:
        raise SipParseError("empty Via")
    message._parsed.top_via = (_first_value(headers, "via"), vias[0])
    if not message.call_id:
        raise SipParseError("empty Call-ID")
    max_forwards = headers.get("max-forwards")
    if max_forwards is not None:
        _uint(max_forwards, "Max-Forwards", 255)
    return message


def _nuls_escaped_in_quotes(head: str) -> bool:
    """Whether every NUL in ``head`` is a quoted-pair (``\\`` + %x00) inside a quoted
    string, the one place RFC 3261 25.1 allows it. Quotes are tracked line by line, so a
    NUL after a fold inside a quoted string is refused (no peer is known to send one)."""
    for line in head.split("\n"):
        if "\x00" not in line:
            continue
        quoted = False
        i = 0
        n = len(line)
        while i < n:
            ch = line[i]
            if ch == "\x00":
                return False
            if quoted:
                if ch == "\\":
                    i += 1  # the escaped character, a NUL included
                elif ch == '"':
                    quoted = False
            elif ch == '"':
                quoted = True
            i += 1
    return True


def _first_value(headers: Headers, key: str) -> str:
    """The first stored value under lookup key ``key`` (which must be present)."""
    for k, _, v in headers._items:
        if k == key:
            return v
    raise SipParseError(f"missing {key}")


# -- building ----------------------------------------------------------------

REASONS: dict[int, str] = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 199: "Early Dialog Terminated",
    200: "OK", 202: "Accepted", 204: "No Notification",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily",
    305: "Use Proxy", 380: "Alternative Service",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
    412: "Conditional Request Failed", 413: "Request Entity Too Large",
    414: "Request-URI Too Long", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 417: "Unknown Resource-Priority", 420: "Bad Extension",
    421: "Extension Required", 422: "Session Interval Too Small", 423: "Interval Too Brief",
    428: "Use Identity Header", 429: "Provide Referrer Identity", 433: "Anonymity Disallowed",
    436: "Bad Identity-Info", 437: "Unsupported Certificate", 438: "Invalid Identity Header",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete",
    485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending",
    493: "Undecipherable", 494: "Security Agreement Required",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 580: "Precondition Failure",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere",
    606: "Not Acceptable", 607: "Unwanted",
}

_CLASS_REASONS = {1: "Trying", 2: "OK", 3: "Redirect", 4: "Client Error",
                  5: "Server Error", 6: "Global Failure"}


def make_response(request: Request, status: int, reason: str | None = None, *,
                  to_tag: str | None = None, body: bytes = b"",
                  content_type: str | None = None, contact: str | None = None,
                  headers: Iterable[tuple[str, str]] = ()) -> Response:
    """A response to ``request`` (RFC 3261 8.2.6.2).

    Copies every Via in order, From, To (adding ``to_tag`` only when To has none),
    Call-ID and CSeq; Timestamp for 100; Record-Route for dialog-creating
    responses (101-299 to INVITE/SUBSCRIBE, RFC 3261 12.1.1).
    """
    if not 100 <= status <= 699:
        raise ValueError(f"status {status} out of range")
    if reason is None:
        reason = REASONS.get(status) or _CLASS_REASONS[status // 100]
    src = request.headers
    out = Headers()
    items = out._items
    for key, name, value in src._items:
        if key == "via":
            items.append((key, name, value))
    for key in ("from", "to", "call-id", "cseq"):
        found = src.get(key)
        if found is None:
            continue
        value = found
        if key == "to" and to_tag is not None:
            to = request.to
            if to.tag is None:
                value = str(to.with_tag(to_tag))
        items.append((key, _CANONICAL[key], value))
    if status == 100:
        timestamp = src.get("timestamp")
        if timestamp is not None:
            out.add("Timestamp", timestamp)
    if 100 < status < 300 and request.method in ("INVITE", "SUBSCRIBE"):
        for value in src.values("record-route"):
            out.add("Record-Route", value)
    if contact is not None:
        out.add("Contact", contact)
    if content_type is not None:
        out.add("Content-Type", content_type)
    for name, value in headers:
        out.add(name, value)
    return Response(status=status, reason=reason, headers=out, body=body)


# The headers a response copies from its request, by lookup key (compact forms included).
_COPIED = ("via", "from", "to", "call-id", "cseq")
_TAG_RE = re.compile(r";[ \t]*tag[ \t]*=", re.I)
_LWS_RE = re.compile(r"[ \t]+")


def salvage_response(data: bytes, status: int, reason: str | None = None, *,
                     headers: Iterable[tuple[str, str]] = ()) -> Response | None:
    """A stateless response to a request that failed to parse, or None when none can be
    built (a response, an ACK, a start line without a SIP version last, or no Via, From,
    To, Call-ID or CSeq line).

    Best effort over whatever arrived: no blank line after the headers, bytes that are
    not UTF-8, NUL bytes, a Request-URI with spaces. Every Via, From, To, Call-ID and
    CSeq is copied byte for byte, folding undone (RFC 3261 7.3.1); To gets a tag when
    it has none (8.2.6.2).
    """
    data = data.lstrip(b"\r\n")
    end = min((i for i in (data.find(b"\r\n\r\n"), data.find(b"\n\n")) if i >= 0),
              default=len(data))
    lines = [line[:-1] if line.endswith("\r") else line
             for line in data[:end].decode("utf-8", "surrogateescape").split("\n")]
    words = _LWS_RE.split(lines[0].strip(" \t"))
    if len(words) < 3 or not words[-1].upper().startswith("SIP/") \
            or words[0].upper() in ("ACK", "") or words[0].upper().startswith("SIP/"):
        return None
    found: list[list[str]] = []  # [lookup key, value] in wire order
    copying = False  # whether the last header line is one we copy (for its folds)
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            more = line.strip(" \t")
            if copying and more:
                found[-1][1] = f"{found[-1][1]} {more}" if found[-1][1] else more
            continue
        name, colon, value = line.partition(":")
        key = _key(name)
        copying = bool(colon) and key in _COPIED
        if copying:
            found.append([key, value.strip(" \t")])
    out = Headers()
    for key in _COPIED:
        values = [value for k, value in found if k == key]
        if not values or any("\r" in value for value in values):
            return None
        for value in values if key == "via" else values[:1]:
            if key == "to" and _TAG_RE.search(value) is None:
                value = f"{value};tag={new_tag()}"
            out.add(_CANONICAL[key], value)
    for name, value in headers:
        out.add(name, value)
    if reason is None:
        reason = REASONS.get(status) or _CLASS_REASONS[status // 100]
    return Response(status=status, reason=reason, headers=out)


def new_branch() -> str:
    """A fresh RFC 3261 branch id (magic cookie + 64 random bits)."""
    return BRANCH_MAGIC + secrets.token_hex(8)


def new_tag() -> str:
    """A fresh From/To tag (48 random bits)."""
    return secrets.token_hex(6)


def new_call_id(host: str) -> str:
    """A fresh globally unique Call-ID ``random@host``."""
    return f"{secrets.token_hex(12)}@{host}"
