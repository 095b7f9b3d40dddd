"""A new SDP offer inside an established dialog (re-INVITE or UPDATE) on any leg.

The same rules for the caller, an agent and a vendor: hold (sendonly, inactive,
c=0.0.0.0) and resume, a new media address or port, a codec change among those the
relay bridges, and a plain session refresh. Our answer keeps our address and port,
carries the negotiated codec and mirrors the offer's direction (RFC 3264 6.1, 8.4).
An offer we cannot take raises :class:`SdpError` before anything changes, so the
session stays as it was (RFC 3261 14.2).
"""

from __future__ import annotations

import ipaddress

import attrs

from ccswitch.media import g711
from ccswitch.media.engine import MediaLeg
from ccswitch.sip.sdp import (
    Negotiated, answer_direction, answer_formats, build_sdp, is_hold, negotiate, parse_sdp,
)

__all__ = ["Reanswer", "reanswer"]


@attrs.frozen(kw_only=True)
class Reanswer:
    """What a new offer led to: our answer, the codec now in use, and whether the
    offerer holds the other party (it will not receive our media)."""

    sdp: bytes
    negotiated: Negotiated
    held: bool


def reanswer(body: bytes, *, media: MediaLeg, local_sdp: bytes, address: str,
             current: Negotiated, events: bool) -> Reanswer:
    """Apply the offer ``body`` to ``media`` and build our answer.

    ``local_sdp`` is the SDP we last sent on this dialog (its session id is kept and its
    version goes up only when the answer differs from it, RFC 3264 8); ``current`` is
    the codec in use, kept when the offer still lists it; ``events`` says whether
    telephone-event may be answered (an agent or vendor leg gets it only when the
    caller has it, since events are relayed, never turned into audio)."""
    offer = parse_sdp(body)
    negotiated = negotiate(offer, supported=g711.CODECS, prefer=current.codec.encoding)
    if not events:
        negotiated = attrs.evolve(negotiated, telephone_event=None)
    ours = parse_sdp(local_sdp)
    direction = answer_direction(offer)
    formats = answer_formats(negotiated)

    def build(version: int) -> bytes:
        return build_sdp(address=address, port=media.local_port, formats=formats,
                         session_id=ours.session_id, session_version=version,
                         direction=direction)

    sdp = build(ours.session_version)
    if sdp != local_sdp:
        sdp = build(ours.session_version + 1)
    # An old-style hold (c=0.0.0.0) names no address to send to (and 0.0.0.0 would
    # reach this host): keep the one we have. Only answered legs get here, so it is set.
    remote = (offer.address, offer.port)
    if ipaddress.ip_address(offer.address).is_unspecified and media.remote is not None:
        remote = media.remote
    # Cannot fail: negotiate() returned a G.711 codec and payload types within 0..127.
    media.configure(remote=remote, codec=negotiated.codec.encoding,
                    payload_type=negotiated.codec.payload_type,
                    dtmf_payload_type=None if negotiated.telephone_event is None
                    else negotiated.telephone_event.payload_type)
    return Reanswer(sdp=sdp, negotiated=negotiated, held=is_hold(offer))
