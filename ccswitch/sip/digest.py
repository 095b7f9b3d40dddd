"""Sans-I/O SIP HTTP-Digest client (RFC 3261 s22, RFC 2617, RFC 7616, RFC 8760).

Parses ``WWW-Authenticate`` / ``Proxy-Authenticate`` challenges, picks the
strongest one a trunk offers, and computes the matching ``Authorization`` /
``Proxy-Authorization`` header value. No I/O, no clock: the caller supplies
the client nonce (``cnonce``) and the nonce count.
"""

from __future__ import annotations

import hashlib
import re
from typing import Sequence

import attrs

from ccswitch.errors import SipError

# Algorithm -> (hashlib name, preference rank); RFC 8760: SHA-512-256 > SHA-256 > MD5.
_HASHES = {"MD5": ("md5", 0), "SHA-256": ("sha256", 1), "SHA-512-256": ("sha512_256", 2)}
_ALGORITHMS = frozenset(_HASHES) | frozenset(f"{a}-SESS" for a in _HASHES)
_QOPS = frozenset({"auth", "auth-int"})

# One auth-param: token "=" ( token / quoted-string ), then "," or the end.
_PARAM = re.compile(
    r"""\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=\s*"""
    r"""(?:"((?:[^"\\]|\\.)*)"|([!#$%&'*+.^_`|~0-9A-Za-z/:@?=-]+))\s*(?:,|\Z)""",
    re.DOTALL,
)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


class DigestError(SipError):
    """A challenge cannot be parsed or answered; the call fails with ``status`` (401)."""

    error_id = "sip.digest"

    def __init__(self, reason: str) -> None:
        super().__init__(401, reason)


def _check_nonce(_: object, __: object, value: str) -> None:
    if not value:
        raise DigestError("digest challenge with an empty nonce")


def _check_algorithm(_: object, __: object, value: str) -> None:
    if value not in _ALGORITHMS:
        raise DigestError(f"unsupported digest algorithm {value!r}")


def _check_qop(_: object, __: object, value: tuple[str, ...]) -> None:
    if not set(value) <= _QOPS:
        raise DigestError(f"unsupported qop {value!r}")


@attrs.frozen(kw_only=True)
class Challenge:
    """One Digest challenge from a 401 / 407 response, normalised."""

    realm: str
    nonce: str = attrs.field(validator=_check_nonce)
    algorithm: str = attrs.field(default="MD5", validator=_check_algorithm)
    qop: tuple[str, ...] = attrs.field(default=(), validator=_check_qop)
    opaque: str | None = None
    stale: bool = False

    def __attrs_post_init__(self) -> None:
        if self.algorithm.endswith("-SESS") and not self.qop:
            # RFC 2617 3.2.2: cnonce may only be sent with qop, yet -sess hashes it.
            raise DigestError(f"{self.algorithm} challenge without qop")


def _auth_params(text: str) -> dict[str, str]:
    """``a=b, c="d"`` -> ``{"a": "b", "c": "d"}`` with lower-case names."""
    params: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        if text[pos] == "," or text[pos].isspace():  # RFC 7230 7: empty list elements
            pos += 1
            continue
        match = _PARAM.match(text, pos)
        if match is None:
            raise DigestError(f"malformed digest parameters at {text[pos:pos + 20]!r}")
        name, quoted, token = match.group(1).lower(), match.group(2), match.group(3)
        if name in params:
            raise DigestError(f"duplicate digest parameter {name!r}")
        params[name] = _ESCAPE.sub(r"\1", quoted) if quoted is not None else token
        pos = match.end()
    return params


def parse_challenge(value: str) -> Challenge:
    """Parse one ``WWW-Authenticate`` / ``Proxy-Authenticate`` header value."""
    scheme, rest = (value.split(None, 1) + ["", ""])[:2]
    if scheme.lower() != "digest":
        raise DigestError(f"unsupported authentication scheme {scheme!r}")
    params = _auth_params(rest)
    for required in ("realm", "nonce"):
        if required not in params:
            raise DigestError(f"digest challenge without {required}")
    qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
    if "qop" in params:
        qop = tuple(q for q in qop if q in _QOPS)  # ignore qop values we do not know
        if not qop:
            raise DigestError(f"no supported qop in {params['qop']!r}")
    return Challenge(
        realm=params["realm"],
        nonce=params["nonce"],
        algorithm=params.get("algorithm", "MD5").upper(),
        qop=qop,
        opaque=params.get("opaque"),
        stale=params.get("stale", "").lower() == "true",
    )


def choose_challenge(values: Sequence[str]) -> Challenge:
    """The strongest usable challenge among several (RFC 8760 s2.4); first wins ties."""
    usable: list[Challenge] = []
    for value in values:
        try:
            usable.append(parse_challenge(value))
        except DigestError:
            continue
    if not usable:
        raise DigestError("no usable digest challenge")
    return max(usable, key=lambda c: _HASHES[c.algorithm.removesuffix("-SESS")][1])


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def authorization(
    challenge: Challenge, *, method: str, uri: str, username: str, password: str,
    cnonce: str, nc: int = 1, body: bytes = b"",
) -> str:
    """The ``Authorization`` / ``Proxy-Authorization`` value answering ``challenge``."""
    base = challenge.algorithm.removesuffix("-SESS")
    sess = base != challenge.algorithm
    hash_name = _HASHES[base][0]

    def h(data: str | bytes) -> str:
        raw = data.encode("utf-8") if isinstance(data, str) else data
        return hashlib.new(hash_name, raw).hexdigest()

    qop = next((q for q in ("auth", "auth-int") if q in challenge.qop), None)
    if qop is not None and not cnonce:
        raise DigestError("qop requires a non-empty cnonce")
    if not 0 < nc <= 0xFFFFFFFF:
        raise DigestError(f"nonce count {nc} out of range")
    nc_hex = f"{nc:08x}"
    ha1 = h(f"{username}:{challenge.realm}:{password}")
    if sess:
        ha1 = h(f"{ha1}:{challenge.nonce}:{cnonce}")
    ha2 = h(f"{method}:{uri}:{h(body)}" if qop == "auth-int" else f"{method}:{uri}")
    if qop is None:  # RFC 2069 compatibility
        response = h(f"{ha1}:{challenge.nonce}:{ha2}")
    else:
        response = h(f"{ha1}:{challenge.nonce}:{nc_hex}:{cnonce}:{qop}:{ha2}")
    parts = [
        f"username={_quote(username)}", f"realm={_quote(challenge.realm)}",
        f"nonce={_quote(challenge.nonce)}", f"uri={_quote(uri)}",
        f'response="{response}"', f"algorithm={base}{'-sess' if sess else ''}",
    ]
    if qop is not None:
        parts += [f"cnonce={_quote(cnonce)}", f"qop={qop}", f"nc={nc_hex}"]
    if challenge.opaque is not None:
        parts.append(f"opaque={_quote(challenge.opaque)}")
    return "Digest " + ", ".join(parts)
