"""Re-INVITE and UPDATE on established legs, on the runtime between fake SIP peers:
hold and resume answered per RFC 3264, new addresses and codecs applied, refreshes
answered with our SDP, offers we cannot take refused with the session unchanged."""

from __future__ import annotations

import struct
from pathlib import Path

from ccswitch.calls.legs import Call
from ccswitch.sip.sdp import parse_sdp
from tests.calls.fakes import SDP_ANSWER, SDP_OFFER, Runtime, SentRequest, dialplan, runtime

HOLD = SDP_OFFER.replace(b"o=- 1 1", b"o=- 1 2") + b"a=sendonly\r\n"
MOVED = SDP_OFFER.replace(b"o=- 1 1", b"o=- 1 2").replace(b"40000", b"41000")
PCMA_ONLY = (SDP_OFFER.replace(b"o=- 1 1", b"o=- 1 2")
             .replace(b"RTP/AVP 0", b"RTP/AVP 8").replace(b"0 PCMU", b"8 PCMA"))
G729_ONLY = (SDP_OFFER.replace(b"o=- 1 1", b"o=- 1 2")
             .replace(b"RTP/AVP 0", b"RTP/AVP 18").replace(b"0 PCMU", b"18 G729"))


def answered(tmp_path: Path) -> tuple[Runtime, Call, SentRequest]:
    """A call bridged to alice."""
    rt = runtime(tmp_path, dialplan())
    rt.call()
    rt.hear_notice()
    [ring] = rt.layer.invites()
    ring.answer(200, SDP_ANSWER, tag="alice")
    [call] = rt.controller._calls.calls.values()
    return rt, call, ring


def test_caller_hold_reinvite_is_answered_recvonly(tmp_path: Path) -> None:
    """A caller's sendonly re-INVITE gets 200 with a=recvonly on our same port."""
    rt, call, _ = answered(tmp_path)
    tx = rt.caller_request("INVITE", HOLD)
    assert tx.responses == [200]
    answer = parse_sdp(tx.bodies[0])
    assert answer.direction == "recvonly"
    assert answer.port == call.caller.media.local_port
    assert call.caller.on_hold


def test_caller_resume_is_answered_sendrecv(tmp_path: Path) -> None:
    """After a hold, a sendrecv re-INVITE resumes: answered sendrecv, no longer on hold,
    each changed answer with a higher session version (RFC 3264 8)."""
    rt, call, _ = answered(tmp_path)
    first = parse_sdp(call.caller.sdp).session_version
    hold = rt.caller_request("INVITE", HOLD, cseq=2)
    tx = rt.caller_request("INVITE", SDP_OFFER.replace(b"o=- 1 1", b"o=- 1 3"), cseq=3)
    assert tx.responses == [200]
    resumed = parse_sdp(tx.bodies[0])
    assert resumed.direction == "sendrecv" and not call.caller.on_hold
    assert first < parse_sdp(hold.bodies[0]).session_version < resumed.session_version


def test_new_address_in_a_reinvite_is_applied(tmp_path: Path) -> None:
    """A re-INVITE with a new port makes the relay send there."""
    rt, call, _ = answered(tmp_path)
    assert rt.caller_request("INVITE", MOVED).responses == [200]
    assert call.caller.media.remote == ("127.0.0.1", 41000)


def test_codec_change_in_a_reinvite_is_taken(tmp_path: Path) -> None:
    """A re-INVITE offering only PCMA moves the caller's leg to PCMA, and the answer says so."""
    rt, call, _ = answered(tmp_path)
    tx = rt.caller_request("INVITE", PCMA_ONLY)
    assert tx.responses == [200]
    assert [f.encoding for f in parse_sdp(tx.bodies[0]).formats] == ["PCMA"]
    assert call.caller.media.codec == "PCMA"


def test_reinvite_with_no_common_codec_keeps_the_session(tmp_path: Path) -> None:
    """A re-INVITE offering only G.729 gets 488, and the leg keeps PCMU and its address."""
    rt, call, _ = answered(tmp_path)
    before = (call.caller.media.remote, call.caller.sdp)
    assert rt.caller_request("INVITE", G729_ONLY).responses == [488]
    assert call.caller.media.codec == "PCMU"
    assert (call.caller.media.remote, call.caller.sdp) == before


def test_update_with_bad_sdp_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    """An UPDATE whose SDP cannot be parsed gets 488; hold state, address and SDP stay."""
    rt, call, _ = answered(tmp_path)
    before = (call.caller.media.remote, call.caller.sdp, call.caller.on_hold)
    assert rt.caller_request("UPDATE", b"v=0\r\nthis is not sdp\r\n").responses == [488]
    assert (call.caller.media.remote, call.caller.sdp, call.caller.on_hold) == before


def test_update_hold_is_answered_recvonly(tmp_path: Path) -> None:
    """An UPDATE with a sendonly offer holds like a re-INVITE: 200 with a=recvonly."""
    rt, call, _ = answered(tmp_path)
    tx = rt.caller_request("UPDATE", HOLD)
    assert tx.responses == [200]
    assert parse_sdp(tx.bodies[0]).direction == "recvonly"
    assert call.caller.on_hold


def test_agent_session_refresh_is_answered_with_our_sdp(tmp_path: Path) -> None:
    """An agent's re-INVITE repeating its SDP (a session refresh) gets 200 with our SDP,
    same session version, not 488."""
    rt, call, ring = answered(tmp_path)
    tx = rt.agent_request(ring, "INVITE", SDP_ANSWER)
    assert tx.responses == [200]
    ours = parse_sdp(tx.bodies[0])
    offered = parse_sdp(ring.request.body)
    [leg] = call.legs.values()
    assert (ours.port, ours.session_id) == (leg.media.local_port, offered.session_id)
    assert ours.direction == "sendrecv"


def test_agent_hold_is_answered_recvonly(tmp_path: Path) -> None:
    """An agent pressing hold (sendonly re-INVITE) gets 200 with a=recvonly."""
    rt, call, ring = answered(tmp_path)
    hold = SDP_ANSWER.replace(b"o=- 1 1", b"o=- 1 2") + b"a=sendonly\r\n"
    tx = rt.agent_request(ring, "INVITE", hold)
    assert tx.responses == [200]
    assert parse_sdp(tx.bodies[0]).direction == "recvonly"
    [leg] = call.legs.values()
    assert leg.on_hold


def test_old_style_hold_keeps_the_address_and_answers_inactive(tmp_path: Path) -> None:
    """A c=0.0.0.0 re-INVITE is answered inactive and the relay keeps the old address."""
    rt, call, _ = answered(tmp_path)
    held = MOVED.replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 0.0.0.0")
    before = call.caller.media.remote
    tx = rt.caller_request("INVITE", held)
    assert tx.responses == [200]
    assert parse_sdp(tx.bodies[0]).direction == "inactive"
    assert call.caller.media.remote == before and call.caller.on_hold



def rtp(seq: int) -> bytes:
    """One PCMU packet of silence (RTP version 2, payload type 0)."""
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 1234) + b"\xff" * 160


def test_agent_on_inactive_hold_does_not_time_out(tmp_path: Path) -> None:
    """An agent holding with an inactive re-INVITE sends no RTP, yet past rtp.timeout
    (60 s) the call goes on while the caller keeps talking."""
    rt, call, ring = answered(tmp_path)
    hold = SDP_ANSWER.replace(b"o=- 1 1", b"o=- 1 2") + b"a=inactive\r\n"
    assert rt.agent_request(ring, "INVITE", hold).responses == [200]
    for second in range(70):
        call.caller.media.datagramReceived(rtp(second), ("127.0.0.1", 40000))
        rt.advance(1)
    assert rt.records == [] and rt.layer.byes() == []


def test_agent_hold_plays_hold_audio_to_the_caller_until_resumed(tmp_path: Path) -> None:
    """An agent's hold loops the hold audio (silence: no music_on_hold here) to the caller;
    the resume stops it, and the record carries the hold."""
    rt, call, ring = answered(tmp_path)
    hold = SDP_ANSWER.replace(b"o=- 1 1", b"o=- 1 2") + b"a=sendonly\r\n"
    rt.agent_request(ring, "INVITE", hold, cseq=1)
    playing = call.caller.media.playing
    assert playing is not None and str(playing.path) == "<silence>"
    rt.advance(3)
    rt.agent_request(ring, "INVITE", SDP_ANSWER.replace(b"o=- 1 1", b"o=- 1 3"), cseq=2)
    assert call.caller.media.playing is None
    rt.caller_bye()
    [finished] = rt.records
    [held] = finished.record.holds
    assert held.seconds is not None and round(held.seconds, 1) == 3.0
