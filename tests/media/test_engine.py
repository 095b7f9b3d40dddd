"""The media engine on real UDP sockets (127.0.0.1); the 20 ms tick is driven by a Clock."""

from __future__ import annotations

import calendar
import random
import socket
import struct
import wave
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import attrs
import numpy as np
import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock, deferLater

from ccswitch.errors import MediaError, RecordingError
from ccswitch.media import g711
from ccswitch.media.engine import MediaEngine, MediaLeg
from ccswitch.media.prompt import Prompt
from ccswitch.media.rtp import RtpHeader, parse_rtp
from ccswitch.recording.recorder import CallRecorder

from tests.udp import HOST, Peer as UdpPeer
TICK = 0.02


class Peer(UdpPeer):
    """A far-end phone: records the RTP it receives, sends to a media leg."""

    def headers(self) -> list[RtpHeader]:
        parsed = [parse_rtp(data) for data, _ in self.received]
        return [h for h in parsed if h is not None]

    def send(self, data: bytes, leg: MediaLeg) -> None:
        self.send_to(data, leg.local_port)


def rtp(*, pt: int = 0, seq: int, ts: int, ssrc: int, payload: bytes,
        marker: bool = False) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq, ts, ssrc) + payload


def tone_prompt(freq: float, frames: int, codec: str = "PCMU") -> Prompt:
    t = np.arange(frames * 160) / 8000
    return Prompt.from_samples((6000 * np.sin(2 * np.pi * freq * t)).astype(np.int16), codec)


def goertzel_power(samples: np.ndarray, freq: float, rate: int = 8000) -> float:
    x = samples.astype(np.float64)
    n = np.arange(x.shape[0])
    return float(abs(np.sum(x * np.exp(-2j * np.pi * freq * n / rate))) ** 2)


def free_even_base(count: int) -> int:
    """An even port p such that p .. p + 2*count - 1 are all free on 127.0.0.1 (bounded tries)."""
    rng = random.Random()
    for _ in range(100):
        base = rng.randrange(30000, 60000, 2)
        sockets = []
        try:
            for port in range(base, base + 2 * count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(s)
                s.bind((HOST, port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free port range found")


async def wait_until(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    """Let the real reactor run until predicate() holds (bounded by timeout)."""
    for _ in range(int(timeout / 0.002)):
        if predicate():
            return
        await deferLater(reactor, 0.002, lambda: None)
    assert predicate(), "condition not reached in time"


@attrs.define
class Env:
    engine: MediaEngine
    clock: Clock
    base: int
    peers: list[Peer] = attrs.Factory(list)

    def peer(self) -> Peer:
        p = Peer()
        udp: Any = reactor
        udp.listenUDP(0, p, interface=HOST)
        self.peers.append(p)
        return p

    def leg(self, peer: Peer | None, role: str = "caller", *, codec: str = "PCMU",
            pt: int = 0, dtmf: int | None = 101) -> MediaLeg:
        leg = self.engine.open_leg("call-1", role)
        if peer is not None:
            leg.configure(remote=peer.address, codec=codec, payload_type=pt,
                          dtmf_payload_type=dtmf)
        return leg

    def tick(self, n: int = 1) -> None:
        for _ in range(n):
            self.clock.advance(TICK)


@pytest_twisted.async_yield_fixture
async def env() -> AsyncIterator[Env]:
    clock = Clock()
    base = free_even_base(8)
    engine = MediaEngine(reactor, address=HOST, port_min=base, port_max=base + 15, clock=clock)
    engine.start()
    e = Env(engine=engine, clock=clock, base=base)
    yield e
    await engine.stop()
    for p in e.peers:
        transport: Any = p.transport
        await transport.stopListening()


@pytest_twisted.ensureDeferred
async def test_prompt_arrives_as_rtp_with_increasing_seq_and_ts(env: Env) -> None:
    """Five ticks of a prompt arrive as five packets, seq +1 and ts +160, one SSRC."""
    phone = env.peer()
    leg = env.leg(phone)
    prompt = tone_prompt(440, 8)
    leg.play(prompt)
    env.tick(5)
    await wait_until(lambda: len(phone.received) >= 5)
    heads = phone.headers()
    assert [h.seq - heads[0].seq for h in heads] == [0, 1, 2, 3, 4]
    assert [h.timestamp - heads[0].timestamp for h in heads] == [0, 160, 320, 480, 640]
    assert len({h.ssrc for h in heads}) == 1 and heads[0].marker and not heads[1].marker
    assert [data[12:] for data, _ in phone.received] == list(prompt.frames[:5])
    assert leg.packets_out == 5


@pytest_twisted.ensureDeferred
async def test_an_unrecorded_prompt_is_sent_but_kept_from_the_tap(env: Env) -> None:
    """A prompt played with recorded=False reaches the phone, yet played_samples is None;
    a recorded one shows its samples."""
    phone = env.peer()
    leg = env.leg(phone)
    leg.play(tone_prompt(440, 8), recorded=False)
    env.tick(2)
    await wait_until(lambda: len(phone.received) >= 2)
    assert leg.played_samples(env.engine.frame_no) is None
    leg.play(tone_prompt(440, 8))
    env.tick(1)
    assert leg.played_samples(env.engine.frame_no) is not None


@pytest_twisted.ensureDeferred
async def test_on_done_fires_once_from_the_tick_after_the_last_frame(env: Env) -> None:
    """A 3-frame prompt calls on_done exactly once, on the third tick."""
    calls: list[int] = []
    leg = env.leg(env.peer())
    leg.play(tone_prompt(440, 3), on_done=lambda: calls.append(env.engine.frame_no))
    env.tick(2)
    assert calls == []
    env.tick(3)
    assert calls == [3] and leg.playing is None


@pytest_twisted.ensureDeferred
async def test_loop_repeats_the_prompt(env: Env) -> None:
    """A looping 2-frame prompt sends frames 0,1,0,1,0."""
    phone = env.peer()
    prompt = tone_prompt(440, 2)
    env.leg(phone).play(prompt, loop=True)
    env.tick(5)
    await wait_until(lambda: len(phone.received) >= 5)
    assert [d[12:] for d, _ in phone.received] == [prompt.frames[i] for i in (0, 1, 0, 1, 0)]


@pytest_twisted.ensureDeferred
async def test_late_tick_catches_up_missed_frames(env: Env) -> None:
    """One 100 ms late tick still produces five frames with contiguous timestamps."""
    phone = env.peer()
    env.leg(phone).play(tone_prompt(440, 10))
    env.clock.advance(5 * TICK)
    await wait_until(lambda: len(phone.received) >= 5)
    heads = phone.headers()
    assert env.engine.ticks == 1 and len(heads) == 5
    assert [h.timestamp - heads[0].timestamp for h in heads] == [0, 160, 320, 480, 640]


@pytest_twisted.ensureDeferred
async def test_stop_playing_stops_sending(env: Env) -> None:
    """After stop_playing no more frames go out."""
    phone = env.peer()
    leg = env.leg(phone)
    leg.play(tone_prompt(440, 10))
    env.tick(2)
    leg.stop_playing()
    env.tick(3)
    await wait_until(lambda: len(phone.received) >= 2)
    await deferLater(reactor, 0.05, lambda: None)
    assert len(phone.received) == 2 and leg.packets_out == 2


@pytest_twisted.ensureDeferred
async def test_bridge_relays_both_ways_with_rewritten_ssrc(env: Env) -> None:
    """Packets cross a bridge in both directions with each outgoing leg's own SSRC."""
    caller, agent = env.peer(), env.peer()
    a, b = env.leg(caller), env.leg(agent, "agent")
    env.engine.bridge(a, b)
    for i in range(3):
        caller.send(rtp(seq=100 + i, ts=1000 + 160 * i, ssrc=0xCA11, payload=b"\x11" * 160), a)
        agent.send(rtp(seq=7 + i, ts=9000 + 160 * i, ssrc=0xA6E7, payload=b"\x22" * 160), b)
    await wait_until(lambda: len(caller.received) >= 3 and len(agent.received) >= 3)
    to_agent, to_caller = agent.headers(), caller.headers()
    assert {h.ssrc for h in to_agent} == {b.sender.ssrc} != {0xCA11}
    assert {h.ssrc for h in to_caller} == {a.sender.ssrc} != {0xA6E7}
    assert [d[12:] for d, _ in agent.received] == [b"\x11" * 160] * 3
    assert [d[12:] for d, _ in caller.received] == [b"\x22" * 160] * 3
    assert [h.seq - to_agent[0].seq for h in to_agent] == [0, 1, 2]


@pytest_twisted.ensureDeferred
async def test_bridge_maps_telephone_event_payload_type(env: Env) -> None:
    """telephone-event PT 101 from the caller leaves the agent leg as PT 96."""
    caller, agent = env.peer(), env.peer()
    a, b = env.leg(caller, dtmf=101), env.leg(agent, "agent", dtmf=96)
    env.engine.bridge(a, b)
    caller.send(rtp(pt=101, seq=1, ts=500, ssrc=1, payload=b"\x05\x0a\x00\xa0", marker=True), a)
    await wait_until(lambda: len(agent.received) >= 1)
    (h,) = agent.headers()
    assert h.payload_type == 96 and h.marker
    assert agent.received[0][0][12:] == b"\x05\x0a\x00\xa0"


@pytest_twisted.ensureDeferred
async def test_bridge_translates_between_laws(env: Env) -> None:
    """PCMU from the caller reaches a PCMA agent as PT 8 with translated payload."""
    caller, agent = env.peer(), env.peer()
    a, b = env.leg(caller), env.leg(agent, "agent", codec="PCMA", pt=8)
    env.engine.bridge(a, b)
    payload = g711.encode(tone_prompt(440, 1).linear[0], "PCMU")
    caller.send(rtp(seq=1, ts=0, ssrc=1, payload=payload), a)
    await wait_until(lambda: len(agent.received) >= 1)
    (h,) = agent.headers()
    assert h.payload_type == 8
    assert agent.received[0][0][12:] == g711.encode(g711.decode(payload, "PCMU"), "PCMA")


@pytest_twisted.ensureDeferred
async def test_bridge_translates_from_a_pcma_agent_to_a_pcmu_caller(env: Env) -> None:
    """PCMA from the agent reaches the PCMU caller as PT 0 with translated payload."""
    caller, agent = env.peer(), env.peer()
    a, b = env.leg(caller), env.leg(agent, "agent", codec="PCMA", pt=8)
    env.engine.bridge(a, b)
    payload = g711.encode(tone_prompt(1000, 1).linear[0], "PCMA")
    agent.send(rtp(pt=8, seq=1, ts=0, ssrc=2, payload=payload), b)
    await wait_until(lambda: len(caller.received) >= 1)
    (h,) = caller.headers()
    assert h.payload_type == 0
    assert caller.received[0][0][12:] == g711.encode(g711.decode(payload, "PCMA"), "PCMU")


@pytest_twisted.ensureDeferred
async def test_telephone_event_is_relayed_untranslated_between_laws(env: Env) -> None:
    """An RFC 4733 event between a PCMU and a PCMA leg keeps its payload, PT mapped."""
    caller, agent = env.peer(), env.peer()
    a, b = env.leg(caller, dtmf=121), env.leg(agent, "agent", codec="PCMA", pt=8, dtmf=101)
    env.engine.bridge(a, b)
    caller.send(rtp(pt=121, seq=1, ts=500, ssrc=1, payload=b"\x05\x0a\x00\xa0"), a)
    await wait_until(lambda: len(agent.received) >= 1)
    (h,) = agent.headers()
    assert h.payload_type == 101
    assert agent.received[0][0][12:] == b"\x05\x0a\x00\xa0"


@pytest_twisted.ensureDeferred
async def test_bridge_relays_every_law_the_far_end_listed(env: Env) -> None:
    """An agent set up for PCMA that also listed PCMU: its PCMU packets reach the PCMU
    caller untouched, its PCMA packets translated, both on the caller's PT."""
    caller, agent = env.peer(), env.peer()
    a = env.leg(caller)
    b = env.engine.open_leg("call-1", "agent")
    b.configure(remote=agent.address, codec="PCMA", payload_type=8, dtmf_payload_type=None,
                also_receive={0: "PCMU"})
    env.engine.bridge(a, b)
    ulaw = g711.encode(tone_prompt(1000, 1).linear[0], "PCMU")
    alaw = g711.encode(tone_prompt(1000, 1).linear[0], "PCMA")
    agent.send(rtp(pt=0, seq=1, ts=0, ssrc=2, payload=ulaw), b)
    await wait_until(lambda: len(caller.received) >= 1)
    agent.send(rtp(pt=8, seq=2, ts=160, ssrc=2, payload=alaw), b)
    await wait_until(lambda: len(caller.received) >= 2)
    assert [h.payload_type for h in caller.headers()] == [0, 0]
    assert [d[12:] for d, _ in caller.received] == [ulaw, alaw.translate(
        g711.translate_table("PCMA", "PCMU"))]


@pytest_twisted.ensureDeferred
async def test_recording_decodes_every_law_the_far_end_listed(
        env: Env, tmp_path: Path) -> None:
    """An agent set up for PCMA that sends PCMU (listed too) is recorded as its tone."""
    caller, agent = env.peer(), env.peer()
    a = env.leg(caller)
    b = env.engine.open_leg("call-1", "agent")
    b.configure(remote=agent.address, codec="PCMA", payload_type=8, dtmf_payload_type=None,
                also_receive={0: "PCMU"})
    recorder = CallRecorder(tmp_path, "rec-3", 0.0, {})
    env.engine.record(a, recorder)
    env.engine.record_agent(b, recorder)
    tone = tone_prompt(1000, 5)
    for i in range(5):
        agent.send(rtp(pt=0, seq=i, ts=160 * i, ssrc=2, payload=tone.frames[i]), b)
        await wait_until(lambda: b.packets_in == i + 1)
        env.tick()
    env.engine.stop_recording(a)
    with wave.open(str(recorder.finish({}).path), "rb") as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    assert np.array_equal(data[:, 1], g711.decode(b"".join(tone.frames), "PCMU"))


def test_configure_refuses_an_unsupported_extra_codec(env: Env) -> None:
    """also_receive naming a codec the engine cannot decode is a MediaError."""
    leg = env.engine.open_leg("call-1", "agent")
    with pytest.raises(MediaError):
        leg.configure(remote=(HOST, 4000), codec="PCMA", payload_type=8,
                      dtmf_payload_type=None, also_receive={18: "G729"})


@pytest_twisted.ensureDeferred
async def test_stream_stays_continuous_from_prompt_to_bridge(env: Env) -> None:
    """After an announcement, relayed agent audio continues the caller's seq and ts line."""
    caller, agent = env.peer(), env.peer()
    a, b = env.leg(caller), env.leg(agent, "agent")
    a.play(tone_prompt(440, 10))
    env.tick(3)
    env.engine.bridge(a, b)
    agent.send(rtp(seq=40000, ts=123, ssrc=0xA6E7, payload=b"\x22" * 160), b)
    await wait_until(lambda: len(caller.received) >= 4)
    heads = caller.headers()
    assert [h.seq - heads[0].seq for h in heads] == [0, 1, 2, 3]
    assert 0 < heads[3].timestamp - heads[2].timestamp <= 320
    assert len({h.ssrc for h in heads}) == 1


@pytest_twisted.ensureDeferred
async def test_symmetric_rtp_latches_to_actual_source_port(env: Env) -> None:
    """After a packet from the SDP IP but another port, prompts go to that port."""
    sdp_peer, actual = env.peer(), env.peer()
    leg = env.leg(sdp_peer)
    actual.send(rtp(seq=1, ts=0, ssrc=5, payload=b"\xff" * 160), leg)
    await wait_until(lambda: leg.packets_in == 1)
    leg.play(tone_prompt(440, 2))
    env.tick(2)
    await wait_until(lambda: len(actual.received) >= 2)
    assert leg.latched and leg.send_address == actual.address and sdp_peer.received == []


@pytest_twisted.ensureDeferred
async def test_packets_from_unexpected_ip_are_ignored(env: Env) -> None:
    """Before latching, RTP from an IP other than the SDP address is dropped."""
    phone = env.peer()
    leg = env.engine.open_leg("c", "caller")
    leg.configure(remote=("127.0.0.2", phone.port), codec="PCMU", payload_type=0,
                  dtmf_payload_type=None)
    phone.send(rtp(seq=1, ts=0, ssrc=5, payload=b"\xff" * 160), leg)
    await wait_until(lambda: leg.packets_rejected == 1)
    assert leg.packets_in == 0 and not leg.latched


@pytest_twisted.ensureDeferred
async def test_after_latching_other_sources_are_ignored(env: Env) -> None:
    """Once latched, packets from another port are rejected, not relayed."""
    phone, intruder = env.peer(), env.peer()
    leg = env.leg(phone)
    phone.send(rtp(seq=1, ts=0, ssrc=5, payload=b"\xff" * 160), leg)
    await wait_until(lambda: leg.packets_in == 1)
    intruder.send(rtp(seq=2, ts=160, ssrc=6, payload=b"\xff" * 160), leg)
    await wait_until(lambda: leg.packets_rejected == 1)
    assert leg.packets_in == 1 and leg.send_address == phone.address


@pytest_twisted.ensureDeferred
async def test_junk_datagrams_are_counted_and_dropped(env: Env) -> None:
    """A non-RTP datagram is counted as invalid and changes nothing else."""
    phone = env.peer()
    leg = env.leg(phone)
    phone.send(b"hello, not rtp", leg)
    await wait_until(lambda: leg.packets_invalid == 1)
    assert leg.packets_in == 0 and leg.last_packet_at is None


@pytest_twisted.ensureDeferred
async def test_counters_track_inbound_packets(env: Env) -> None:
    """packets_in, bytes_in and last_packet_at follow received RTP."""
    phone = env.peer()
    leg = env.leg(phone)
    env.clock.advance(3.5)
    phone.send(rtp(seq=1, ts=0, ssrc=5, payload=b"\xff" * 160), leg)
    await wait_until(lambda: leg.packets_in == 1)
    assert leg.bytes_in == 172 and leg.last_packet_at == 3.5


@pytest_twisted.ensureDeferred
async def test_recording_mixes_prompt_and_inbound_caller_and_agent_audio(
        env: Env, tmp_path: Path) -> None:
    """Left = prompt 440 Hz + caller's 660 Hz; right = agent's 1 kHz only."""
    caller, agent = env.peer(), env.peer()
    a, b = env.leg(caller), env.leg(agent, "agent")
    recorder = CallRecorder(tmp_path, "rec-1", calendar.timegm((2024, 1, 2, 3, 4, 5)), {})
    env.engine.record(a, recorder)
    env.engine.record_agent(b, recorder)
    a.play(tone_prompt(440, 25))
    caller_tone, agent_tone = tone_prompt(660, 25), tone_prompt(1000, 25)
    for i in range(25):
        caller.send(rtp(seq=i, ts=160 * i, ssrc=1, payload=caller_tone.frames[i]), a)
        agent.send(rtp(seq=i, ts=160 * i, ssrc=2, payload=agent_tone.frames[i]), b)
        await wait_until(lambda: a.packets_in == i + 1 and b.packets_in == i + 1)
        env.tick()
    env.engine.stop_recording(a)
    result = recorder.finish({})
    with wave.open(str(result.path), "rb") as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    assert data.shape == (25 * 160, 2)
    left, right = data[:, 0], data[:, 1]
    noise = goertzel_power(left, 1000)
    assert goertzel_power(left, 440) > 100 * noise and goertzel_power(left, 660) > 100 * noise
    assert goertzel_power(right, 1000) > 100 * goertzel_power(right, 440)
    assert goertzel_power(right, 1000) > 100 * goertzel_power(right, 660)


@pytest_twisted.ensureDeferred
async def test_recording_ignores_telephone_events(env: Env, tmp_path: Path) -> None:
    """DTMF packets on the caller leg add nothing to the left channel."""
    caller = env.peer()
    a = env.leg(caller)
    recorder = CallRecorder(tmp_path, "rec-2", 0.0, {})
    env.engine.record(a, recorder)
    for i in range(5):
        caller.send(rtp(pt=101, seq=i, ts=0, ssrc=1, payload=b"\x05\x0a\x00\xa0"), a)
    await wait_until(lambda: a.packets_in == 5)
    env.tick(5)
    env.engine.stop_recording(a)
    with wave.open(str(recorder.finish({}).path), "rb") as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert data.shape == (5 * 160 * 2,) and not data.any()


@pytest_twisted.ensureDeferred
async def test_recording_error_stops_tap_but_not_the_tick(env: Env) -> None:
    """A recorder failing with RecordingError is detached, reported, and playback goes on."""

    class Broken:
        def write(self, left: np.ndarray, right: np.ndarray) -> None:
            raise RecordingError("disk full")

    phone = env.peer()
    leg = env.leg(phone)
    errors: list[RecordingError] = []
    tap = env.engine.record(leg, Broken(), on_error=errors.append)  # type: ignore[arg-type]
    leg.play(tone_prompt(440, 5))
    env.tick(3)
    await wait_until(lambda: len(phone.received) >= 3)
    assert len(errors) == 1 and not tap.active and leg.packets_out == 3


@pytest_twisted.ensureDeferred
async def test_failing_on_done_does_not_stop_the_clock(env: Env) -> None:
    """An exception in on_done is logged; later prompts still play."""
    phone = env.peer()
    leg = env.leg(phone)

    def boom() -> None:
        raise RuntimeError("callback bug")

    leg.play(tone_prompt(440, 1), on_done=boom)
    env.tick()
    leg.play(tone_prompt(440, 2))
    env.tick(2)
    await wait_until(lambda: len(phone.received) >= 3)
    assert leg.packets_out == 3


@pytest_twisted.ensureDeferred
async def test_ports_are_even_and_skip_a_busy_port(env: Env) -> None:
    """With the first even port taken by someone else, the leg gets the next even port."""
    clock = Clock()
    base = free_even_base(2)
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind((HOST, base))
    try:
        engine = MediaEngine(reactor, address=HOST, port_min=base - 1, port_max=base + 3,
                             clock=clock)
        leg = engine.open_leg("c", "caller")
        assert leg.local_port == base + 2
        await engine.stop()
    finally:
        busy.close()


@pytest_twisted.ensureDeferred
async def test_exhausted_range_raises_media_error(env: Env) -> None:
    """When every even port is in use, open_leg raises MediaError."""
    engine = MediaEngine(reactor, address=HOST, port_min=env.base, port_max=env.base + 3,
                         clock=Clock())
    engine.open_leg("c", "caller")
    engine.open_leg("c", "agent")
    with pytest.raises(MediaError):
        engine.open_leg("c", "third")
    await engine.stop()


@pytest_twisted.ensureDeferred
async def test_close_frees_the_port(env: Env) -> None:
    """After close() completes, the same port can be opened again; close is idempotent."""
    engine = MediaEngine(reactor, address=HOST, port_min=env.base, port_max=env.base + 1,
                         clock=Clock())
    leg = engine.open_leg("c", "caller")
    port = leg.local_port
    await leg.close()
    await leg.close()
    assert engine.open_leg("c", "again").local_port == port
    await engine.stop()


@pytest_twisted.ensureDeferred
async def test_allocation_wraps_around(env: Env) -> None:
    """Ports are handed out round-robin and wrap to the start of the range."""
    legs = [env.engine.open_leg("c", str(i)) for i in range(8)]
    assert [leg.local_port for leg in legs] == list(range(env.base, env.base + 16, 2))
    await legs[3].close()
    assert env.engine.open_leg("c", "again").local_port == env.base + 6


def test_bad_port_range_is_rejected() -> None:
    """A range without an even port is a MediaError at construction."""
    with pytest.raises(MediaError):
        MediaEngine(reactor, address=HOST, port_min=20001, port_max=20001)


@pytest_twisted.ensureDeferred
async def test_recording_left_mix_saturates(env: Env, tmp_path: Path) -> None:
    """Loud prompt plus loud caller audio clips at 32767 instead of wrapping negative."""
    caller = env.peer()
    a = env.leg(caller)
    recorder = CallRecorder(tmp_path, "rec-3", 0.0, {})
    env.engine.record(a, recorder)
    a.play(Prompt.from_samples(np.full(160, 30000, dtype=np.int16), "PCMU"))
    caller.send(rtp(seq=1, ts=0, ssrc=1, payload=b"\x80" * 160), a)  # PCMU 0x80 = +32124
    await wait_until(lambda: a.packets_in == 1)
    env.tick()
    env.engine.stop_recording(a)
    with wave.open(str(recorder.finish({}).path), "rb") as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    assert (data[:, 0] == 32767).all()


@pytest_twisted.ensureDeferred
async def test_record_agent_without_active_recording_is_harmless(env: Env, tmp_path: Path) -> None:
    """Adding an agent to a stopped recording returns False instead of raising."""
    a, b = env.leg(env.peer()), env.leg(env.peer(), "agent")
    recorder = CallRecorder(tmp_path, "rec-4", 0.0, {})
    env.engine.record(a, recorder)
    env.engine.stop_recording(a)
    assert env.engine.record_agent(b, recorder) is False and b.fifo is None
