"""Value parsers shared by the service config and the dialplans.

Addresses, ports, SIP URIs, file paths (resolved against the file that names
them), WAV sounds, percentages and the API token file. The ``_parse_*`` helpers
and :func:`read_token` raise ValueError with an operator-facing reason, the
``*_problem`` helpers return that reason (or None); ``_sound``, ``_listen`` and
``_percent`` check one key of a :class:`~ccswitch.config.checker._Section` and
record what is wrong on that key.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from pathlib import Path
from typing import Final

from ccswitch.config.checker import _display, _Section

_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_PORT_RANGE = re.compile(r"\s*(\d{1,5})\s*-\s*(\d{1,5})\s*")


# -- small parsers (raise ValueError with an operator-facing reason) -------------------


def _parse_port(text: str, *, allow_zero: bool) -> int:
    if not text.isdigit() or len(text) > 5:
        raise ValueError(f"port {text!r} is not a number")
    port = int(text)
    low = 0 if allow_zero else 1
    if not low <= port <= 65535:
        raise ValueError(f"port {port} is out of range {low}-65535")
    return port


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address") from None


def _parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` with an IP literal host; port 0 = any free port."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError("missing ']' after the IPv6 address")
        host, rest = text[1:end], text[end + 1:]
        if not rest.startswith(":"):
            raise ValueError("expected [IPv6]:port, e.g. [::1]:5060")
        if _parse_ip(host).version != 6:
            raise ValueError("only IPv6 addresses go in brackets")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ValueError("expected host:port, e.g. 127.0.0.1:5060")
        if ":" in host:
            raise ValueError("an IPv6 address must be in brackets, e.g. [::1]:5060")
        _parse_ip(host)
    return host, _parse_port(port_text, allow_zero=True)


def _uri_problem(uri: str) -> str | None:
    """Why ``uri`` is not a usable sip:/sips: URI with a host, or None."""
    scheme, colon, rest = uri.partition(":")
    if scheme.lower() not in ("sip", "sips") or not colon:
        return "must start with sip: or sips:"
    if any(c.isspace() for c in uri):
        return "must not contain spaces"
    hostport = re.split(r"[;?]", rest, maxsplit=1)[0].rpartition("@")[2]
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            return "has no closing ']' after the IPv6 host"
        host, tail = hostport[1:end], hostport[end + 1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return f"host [{host}] is not an IPv6 address"
        if tail and not tail.startswith(":"):
            return f"unexpected {tail!r} after the host"
        port_text = tail[1:] if tail else None
    else:
        host, sep, port = hostport.partition(":")
        port_text = port if sep else None
        if not host:
            return "has no host"
        if not _HOSTNAME.fullmatch(host):
            return f"host {host!r} is not a valid host name or address"
    if port_text is not None:
        try:
            _parse_port(port_text, allow_zero=False)
        except ValueError as e:
            return str(e)
    return None


def _resolve(base: Path, text: str) -> Path:
    path = Path(text)
    return Path(os.path.normpath(path if path.is_absolute() else base / path))


def _wav_problem(path: Path) -> str | None:
    """Why ``path`` is not a readable WAV file (checks the RIFF/WAVE header only), or None."""
    try:
        with path.open("rb") as f:
            head = f.read(12)
    except FileNotFoundError:
        return f"file {_display(path)} does not exist"
    except IsADirectoryError:
        return f"{_display(path)} is a directory, not a WAV file"
    except PermissionError:
        return f"file {_display(path)} is not readable (permission denied)"
    except OSError as e:
        return f"cannot read {_display(path)}: {e.strerror or e}"
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return f"{_display(path)} is not a WAV file (no RIFF/WAVE header)"
    return None


# -- one key of a section (the problem is recorded on the key) -------------------------


def _sound(sec: _Section, name: str, base: Path) -> Path | None:
    """A readable WAV file named by ``name`` (relative to ``base``), or None (absent, or
    the error is recorded)."""
    text = sec.string(name, what="a WAV file path")
    if text is None:
        return None
    path = _resolve(base, text)
    problem = _wav_problem(path)
    if problem is not None:
        sec.error(name, problem)
        return None
    return path


def _listen(sec: _Section, name: str) -> tuple[str, int] | None:
    text = sec.string(name, what="host:port, e.g. 127.0.0.1:5060")
    if text is None:
        return None
    try:
        return _parse_listen(text)
    except ValueError as e:
        sec.error(name, str(e))
        return None


def _percent(sec: _Section, name: str) -> float | None:
    value = sec.data.get(name)
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or not 0 < value <= 100):
        sec.error(name, f"must be a percentage above 0 and at most 100, got {value!r}")
        return None
    return float(value)


# -- the API token file ----------------------------------------------------------------


#: Shortest API token accepted (characters): guessing must be hopeless.
MIN_TOKEN_LENGTH: Final = 24


def read_token(path: Path) -> str:
    """The API token in ``path`` (surrounding whitespace removed); ValueError if unusable."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read {_display(path)}: {e}") from e
    if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() or ord(c) < 33 for c in token):
        raise ValueError(f"{_display(path)} must hold one token of at least "
                         f"{MIN_TOKEN_LENGTH} printable characters without spaces "
                         "(e.g. made by: openssl rand -hex 32)")
    return token


def _token_problem(path: Path) -> str | None:
    try:
        read_token(path)
    except ValueError as e:
        return str(e)
    return None
