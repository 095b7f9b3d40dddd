"""RFC 3261 request checks the call runtime runs on every request before acting on it.

A pure function over a parsed :class:`~ccswitch.sip.message.Request`: it returns
the :class:`Rejection` to answer with, or None when the request may go on to
method dispatch. Checks run in the order of RFC 3261 section 8.2 (with the
Max-Forwards check of 16.3 first, since a new call is relayed to agent legs):

1. 400: what the transaction layer and the dialog code rely on (Via, From, To,
   Call-ID, CSeq matching the method, a numeric Max-Forwards) and, for INVITE,
   exactly one Contact with a SIP/SIPS URI (8.1.1.8) and Record-Route values that
   parse as SIP name-addrs (they become our route set, 12.1.1). The parser
   already enforces most of this; requests built in code get the same checks.
2. 483 Too Many Hops: Max-Forwards 0 on an out-of-dialog request other than
   OPTIONS (which we answer ourselves, 11 and 16.3 item 2), ACK and CANCEL.
   In-dialog requests with Max-Forwards 0 end here (we are their UAS).
3. 416 Unsupported URI Scheme: a Request-URI that is not sip/sips (8.2.2.1).
   To/From are not judged on their scheme (8.2.2.1 says not to reject on To).
4. 420 Bad Extension with ``Unsupported`` listing every unknown Require
   option-tag (8.2.2.3); not for CANCEL (9.1) and never for ACK.
5. INVITE bodies (8.2.3, 7.4.1): a body without Content-Type is 400; a media
   type outside ``accepted_types`` is 415 with ``Accept``; a Content-Encoding
   other than ``identity`` is 415 with ``Accept-Encoding: identity``.
6. 406 Not Acceptable (21.4.7) for an INVITE whose ``Accept`` admits no
   ``application/sdp``: every answer to an INVITE carries SDP.

ACK is never rejected: no response may be sent to it (17.2.1, 8.2.6).
Proxy-Require is for proxies and is ignored (20.29).
"""

from __future__ import annotations

import attrs

from ccswitch.errors import SipParseError
from ccswitch.sip.message import Headers, NameAddr, Request

__all__ = ["Rejection", "check_request"]

_BASE_TYPES = frozenset({"application/sdp"})


def _status(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 300 <= value <= 699:
        raise ValueError(f"a rejection status must be 300-699, got {value!r}")


def _reason(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not value or "\r" in value or "\n" in value:
        raise ValueError(f"bad reason phrase {value!r}")


def _headers(instance: object, attribute: attrs.Attribute[tuple[tuple[str, str], ...]],
             value: tuple[tuple[str, str], ...]) -> None:
    for name, text in value:
        if not name or any(c in name for c in " \t\r\n:") or "\r" in text or "\n" in text:
            raise ValueError(f"bad header {name!r}: {text!r}")


@attrs.frozen(kw_only=True)
class Rejection:
    """The final response to send instead of handling the request."""

    status: int = attrs.field(validator=_status)
    reason: str = attrs.field(validator=_reason)
    headers: tuple[tuple[str, str], ...] = attrs.field(default=(), validator=_headers)


def check_request(request: Request, *, supported_extensions: frozenset[str] = frozenset(),
                  accepted_types: frozenset[str] = _BASE_TYPES) -> Rejection | None:
    """The RFC 3261 8.2 rejection for ``request``, or None when it may be handled.

    ``supported_extensions`` are the option-tags we implement (compared case-
    insensitively); ``accepted_types`` the body media types we take in an INVITE.
    Never raises for a malformed header: that becomes a 400 rejection.
    """
    method = request.method
    if method == "ACK":
        return None
    try:
        return _check(request, method, supported_extensions, accepted_types)
    except SipParseError as e:
        return Rejection(status=400, reason=_phrase(e.reason))


def _check(request: Request, method: str, supported: frozenset[str],
           accepted: frozenset[str]) -> Rejection | None:
    headers = request.headers
    # 1. What everything downstream relies on (the parser checks this too).
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        if name not in headers:
            return Rejection(status=400, reason=f"Missing {name}")
    if request.cseq[1] != method:
        return Rejection(status=400, reason="CSeq Method Mismatch")
    request.top_via  # each raises SipParseError when its header is malformed
    request.from_
    to_tag = request.to.tag
    max_forwards = headers.get("Max-Forwards")
    hops: int | None = None
    if max_forwards is not None:
        text = max_forwards.strip()
        if not text or len(text) > 10 or not text.isascii() or not text.isdigit() \
                or int(text) > 255:
            return Rejection(status=400, reason="Bad Max-Forwards")
        hops = int(text)
    if method == "INVITE":
        bad = _dialog_problem(request)
        if bad is not None:
            return Rejection(status=400, reason=bad)

    # 2. Loops (16.3 item 2): only requests that start something we relay onwards.
    if hops == 0 and to_tag is None and method not in ("OPTIONS", "CANCEL"):
        return Rejection(status=483, reason="Too Many Hops")

    # 3. Request-URI scheme (8.2.2.1).
    if request.uri.scheme.lower() not in ("sip", "sips"):
        return Rejection(status=416, reason="Unsupported URI Scheme")

    # 4. Require (8.2.2.3).
    if method != "CANCEL" and "Require" in headers:
        lowered = {tag.lower() for tag in supported}
        unknown: list[str] = []
        for tag in headers.get_all("Require"):
            if tag.lower() not in lowered and tag not in unknown:
                unknown.append(tag)
        if unknown:
            return Rejection(status=420, reason="Bad Extension",
                             headers=(("Unsupported", ", ".join(unknown)),))

    # 5. The body of an INVITE (8.2.3), then whether the caller takes the SDP of our
    # answer (21.4.7).
    if method == "INVITE" and request.body:
        problem = _content_problem(request, accepted)
        if problem is not None:
            return problem
    if method == "INVITE" and "Accept" in headers and not _accepts_sdp(headers):
        return Rejection(status=406, reason="Not Acceptable",
                         headers=(("Accept", "application/sdp"),))
    return None


def _accepts_sdp(headers: Headers) -> bool:
    """Whether an Accept header admits application/sdp (directly, ``application/*`` or
    ``*/*``) with a quality above 0; an empty Accept admits nothing (20.1)."""
    for media_range in headers.get_all("Accept"):
        kind, *params = media_range.split(";")
        if kind.replace(" ", "").replace("\t", "").lower() not in (
                "application/sdp", "application/*", "*/*"):
            continue
        quality = [value for name, _, value in (p.partition("=") for p in params)
                   if name.strip().lower() == "q"]
        if not quality or _quality(quality[0]) > 0:
            return True
    return False


def _quality(text: str) -> float:
    """An Accept q-value (0 to 1); an unreadable one counts as 1, as if it were absent."""
    try:
        return float(text.strip())
    except ValueError:
        return 1.0


def _dialog_problem(request: Request) -> str | None:
    """Why an INVITE cannot make a dialog: not exactly one SIP/SIPS Contact (8.1.1.8) or
    a Record-Route that is not a SIP name-addr (the route set of 12.1.1), or None."""
    contacts = request.headers.get_all("Contact")
    if not contacts:
        return "Missing Contact"
    if len(contacts) != 1:
        return "More Than One Contact"
    try:
        NameAddr.parse(contacts[0]).sip_uri
    except SipParseError:
        return "Bad Contact"
    for route in request.headers.get_all("Record-Route"):
        try:
            NameAddr.parse(route).sip_uri
        except SipParseError:
            return "Bad Record-Route"
    return None


def _content_problem(request: Request, accepted: frozenset[str]) -> Rejection | None:
    headers = request.headers
    content_type = headers.get("Content-Type")
    if content_type is None:
        return Rejection(status=400, reason="Missing Content-Type")
    media_type = content_type.partition(";")[0].strip().lower()
    kind, slash, subtype = media_type.partition("/")
    if not slash or not kind.strip() or not subtype.strip():
        return Rejection(status=400, reason="Bad Content-Type")
    media_type = f"{kind.strip()}/{subtype.strip()}"
    if media_type not in {t.lower() for t in accepted}:
        return Rejection(status=415, reason="Unsupported Media Type",
                         headers=(("Accept", ", ".join(sorted(accepted))),))
    for coding in headers.get_all("Content-Encoding"):
        if coding.lower() != "identity":
            return Rejection(status=415, reason="Unsupported Media Type",
                             headers=(("Accept-Encoding", "identity"),))
    return None


def _phrase(text: str) -> str:
    """A reason phrase from a parse error: printable ASCII, bounded, never empty."""
    cleaned = "".join(c if " " <= c <= "~" else "?" for c in text)[:80].strip()
    return cleaned or "Bad Request"
