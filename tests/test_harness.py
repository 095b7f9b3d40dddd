"""The real-peer harness proves itself with no ccswitch involved.

pjsua2 phones call each other directly and SIPp scenarios run against each
other (and against the phones) on 127.0.0.1; the audio helpers and the
committed prompts are checked on synthetic signals and the files themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.audio import (
    dominant_frequency,
    goertzel_power,
    normalized_xcorr_max,
    read_wav,
    rms,
    tone_present,
)
from tests.phones.client import (
    Phone,
    PhoneFactory,
    SippFactory,
    free_udp_port,
    write_ulaw_tone,
)

SOUNDS = Path(__file__).resolve().parents[1] / "dialplans" / "sounds"
RATE = 8000


def sine(freq: float, seconds: float = 1.0, amplitude: float = 8000.0) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return amplitude * np.sin(2 * np.pi * freq * t)


def mono(path: Path) -> np.ndarray:
    rate, data = read_wav(path)
    assert rate == RATE
    return data[:, 0]


# -- audio helpers (unit) --------------------------------------------------------

def test_tone_present_finds_the_tone_under_g711_like_noise() -> None:
    """A 440 Hz sine with added noise counts as 440 Hz, not 1000 Hz."""
    x = sine(440) + np.random.default_rng(7).normal(0, 300, RATE)
    assert tone_present(x, RATE, 440, min_ratio=0.8)
    assert not tone_present(x, RATE, 1000, min_ratio=0.1)


def test_tone_present_rejects_silence() -> None:
    """A near-silent signal never counts as a tone, whatever its spectrum."""
    assert not tone_present(sine(440, amplitude=20), RATE, 440, min_ratio=0.5)


def test_dominant_frequency_and_goertzel_agree_on_a_sine() -> None:
    """The FFT peak of a 1000 Hz sine is 1000 Hz and Goertzel power equals A**2/2."""
    x = sine(1000, amplitude=1000)
    assert dominant_frequency(x, RATE) == pytest.approx(1000, abs=2)
    assert goertzel_power(x, RATE, 1000) == pytest.approx(1000**2 / 2, rel=0.01)
    assert goertzel_power(x, RATE, 440) < 1.0
    assert rms(x) ** 2 == pytest.approx(1000**2 / 2, rel=0.01)


def test_xcorr_finds_an_announcement_inside_a_longer_channel() -> None:
    """A quieter copy of a noise burst inside noise scores ~1, unrelated noise ~0."""
    rng = np.random.default_rng(3)
    needle = rng.normal(0, 1000, 4000)
    hay = rng.normal(0, 50, 20000)
    hay[5000:9000] += 0.5 * needle
    assert normalized_xcorr_max(hay, needle) > 0.9
    assert normalized_xcorr_max(rng.normal(0, 1000, 20000), needle) < 0.2


# -- committed prompts -------------------------------------------------------------

def test_qa_notice_is_a_short_8k_mono_prompt() -> None:
    """qa_notice.wav is 8 kHz mono 16-bit speech of 3-4.5 s with no silent edges."""
    x = mono(SOUNDS / "qa_notice.wav")
    assert 3.0 <= len(x) / RATE <= 4.5
    assert rms(x) > 1000
    assert rms(x[: RATE // 2]) > 200 and rms(x[-RATE // 2:]) > 100


def test_moh_keeps_away_from_the_test_tones() -> None:
    """moh.wav is an ~8 s audible loop with (almost) no energy at 440 or 1000 Hz."""
    x = mono(SOUNDS / "moh.wav")
    assert 7.5 <= len(x) / RATE <= 8.5
    assert rms(x) > 1000
    assert not tone_present(x, RATE, 440, min_ratio=0.01)
    assert not tone_present(x, RATE, 1000, min_ratio=0.01)


# -- pjsua2 phone to phone ------------------------------------------------------------

@pytest.fixture(scope="module")
def direct_call(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One call: caller (440 Hz) -> agent (1000 Hz), both recording, 2 s talk."""
    rec = tmp_path_factory.mktemp("direct")
    phones = PhoneFactory()
    try:
        agent = phones("--role", "agent", "--tone", "1000", "--record", str(rec / "agent.wav"),
                       "--timeout", "20", name="agent")
        caller = phones("--role", "caller", "--dial", f"sip:agent@127.0.0.1:{agent.port}",
                        "--tone", "440", "--record", str(rec / "caller.wav"),
                        "--hangup-after", "2", "--timeout", "20", name="caller")
        codes = {"caller": caller.wait_exit(20), "agent": agent.wait_exit(10)}
        yield {"agent": agent, "caller": caller, "codes": codes, "dir": rec}
    finally:
        phones.stop_all()


@pytest.mark.e2e
def test_direct_call_both_sides_confirm(direct_call: dict[str, Any]) -> None:
    """Caller and agent both reach CONFIRMED with 200 for the same Call-ID."""
    caller: Phone = direct_call["caller"]
    agent: Phone = direct_call["agent"]
    c = caller.wait_state("CONFIRMED", timeout=0)
    a = agent.wait_state("CONFIRMED", timeout=0)
    assert c["code"] == a["code"] == 200
    assert c["call_id"] == a["call_id"]


@pytest.mark.e2e
def test_direct_call_ends_cleanly_after_caller_hangs_up(direct_call: dict[str, Any]) -> None:
    """Both sides see DISCONNECTED, report done and exit 0."""
    assert direct_call["codes"] == {"caller": 0, "agent": 0}
    for phone in (direct_call["caller"], direct_call["agent"]):
        phone.wait_state("DISCONNECTED", timeout=0)
        assert phone.done is not None and phone.done["calls"][0]["confirmed"] is True
    assert direct_call["caller"].find("hangup")[0]["why"] == "hangup-after"


@pytest.mark.e2e
def test_agent_recording_hears_the_callers_tone(direct_call: dict[str, Any]) -> None:
    """The agent's recording is ~2 s of 440 Hz (the caller's tone), not its own 1000 Hz."""
    x = mono(direct_call["dir"] / "agent.wav")
    assert len(x) / RATE == pytest.approx(2.0, abs=0.5)
    steady = x[RATE // 4:]
    assert tone_present(steady, RATE, 440, min_ratio=0.8)
    assert not tone_present(steady, RATE, 1000, min_ratio=0.05)


@pytest.mark.e2e
def test_caller_recording_hears_the_agents_tone(direct_call: dict[str, Any]) -> None:
    """The caller's recording is the agent's 1000 Hz tone."""
    x = mono(direct_call["dir"] / "caller.wav")
    assert tone_present(x[RATE // 4:], RATE, 1000, min_ratio=0.8)


@pytest.mark.e2e
def test_agent_reject_reaches_caller(phone_factory: PhoneFactory) -> None:
    """An agent started with --reject 486 makes the caller's call fail with 486."""
    agent = phone_factory("--role", "agent", "--reject", "486", "--timeout", "10", name="agent")
    caller = phone_factory("--role", "caller", "--dial", f"sip:a@127.0.0.1:{agent.port}",
                           "--timeout", "10", name="caller")
    assert caller.wait_exit(10) == 0
    assert caller.wait_state("DISCONNECTED", timeout=0)["code"] == 486
    assert not caller.find("state", lambda e: e["state"] == "CONFIRMED")
    assert agent.wait_exit(5) == 0


@pytest.mark.e2e
def test_caller_abandons_a_ringing_call(phone_factory: PhoneFactory) -> None:
    """--hangup-after-start cancels a call the agent never answers (487 Request Terminated)."""
    agent = phone_factory("--role", "agent", "--no-answer", "--timeout", "10", name="agent")
    caller = phone_factory("--role", "caller", "--dial", f"sip:a@127.0.0.1:{agent.port}",
                           "--hangup-after-start", "0.8", "--timeout", "10", name="caller")
    assert caller.wait_exit(10) == 0
    assert caller.wait_state("DISCONNECTED", timeout=0)["code"] == 487
    agent.wait_state("EARLY", timeout=0)
    assert agent.wait_exit(5) == 0
    assert agent.done is not None and agent.done["calls"][0]["confirmed"] is False


@pytest.mark.e2e
def test_agent_answer_delay_and_agent_hangup(phone_factory: PhoneFactory) -> None:
    """The agent rings ~1 s before answering, then hangs up itself 0.5 s later."""
    agent = phone_factory("--role", "agent", "--answer-delay", "1", "--hangup-after", "0.5",
                          "--timeout", "10", name="agent")
    caller = phone_factory("--role", "caller", "--dial", f"sip:a@127.0.0.1:{agent.port}",
                           "--timeout", "10", name="caller")
    assert caller.wait_exit(10) == 0
    ringing = agent.wait_for("incoming", timeout=0)["t"]
    answered = agent.wait_state("CONFIRMED", timeout=0)["t"]
    assert 0.9 <= answered - ringing <= 2.0
    assert agent.find("hangup")[0]["why"] == "hangup-after"
    assert caller.done is not None and caller.done["calls"][0]["confirmed"] is True
    assert agent.wait_exit(5) == 0


@pytest.mark.e2e
def test_stop_hangs_up_the_call_and_exits_3(phone_factory: PhoneFactory) -> None:
    """stop() (SIGTERM) makes a phone hang up its live call and exit 3; the peer sees BYE."""
    agent = phone_factory("--role", "agent", "--timeout", "10", name="agent")
    caller = phone_factory("--role", "caller", "--dial", f"sip:a@127.0.0.1:{agent.port}",
                           "--timeout", "10", name="caller")
    caller.wait_state("CONFIRMED", timeout=5)
    assert caller.stop() == 3
    assert caller.find("hangup")[0]["why"] == "stopped"
    assert agent.wait_exit(5) == 0
    agent.wait_state("DISCONNECTED", timeout=0)


@pytest.mark.e2e
def test_phone_times_out_nonzero(phone_factory: PhoneFactory) -> None:
    """An agent nobody calls exits 2 at --timeout after printing a timeout event."""
    agent = phone_factory("--role", "agent", "--timeout", "0.5", name="agent")
    assert agent.wait_exit(10) == 2
    agent.wait_for("timeout", timeout=0)


# -- SIPp ---------------------------------------------------------------------------------

def _sipp_common() -> tuple[str, ...]:
    return ("-i", "127.0.0.1", "-timeout", "20s", "-timeout_error")


@pytest.mark.e2e
def test_sipp_uac_abandon_against_sipp_uas(sipp_factory: SippFactory) -> None:
    """uac_abandon.xml completes 2 calls against uas_answer.xml; both exit 0."""
    port = free_udp_port()
    uas = sipp_factory("uas_answer.xml", *_sipp_common(), "-m", "2", "-p", str(port),
                       "-mp", str(free_udp_port()), name="uas")
    uac = sipp_factory("uac_abandon.xml", *_sipp_common(), "-m", "2", "-l", "2", "-r", "10",
                       "-d", "500", "-s", "100", "-p", str(free_udp_port()),
                       "-mp", str(free_udp_port()), f"127.0.0.1:{port}", name="uac")
    assert uac.wait(25) == 0, uac.describe()
    assert uas.wait(10) == 0, uas.describe()


@pytest.mark.e2e
def test_sipp_uac_call_streams_against_echoing_uas(sipp_factory: SippFactory) -> None:
    """uac_call.xml (rtp_stream) completes 2 calls against uas_answer.xml with -rtp_echo."""
    write_ulaw_tone(sipp_factory.cwd / "caller_audio.ulaw", 440)
    port = free_udp_port()
    uas = sipp_factory("uas_answer.xml", *_sipp_common(), "-m", "2", "-p", str(port),
                       "-mp", str(free_udp_port()), "-rtp_echo", name="uas")
    uac = sipp_factory("uac_call.xml", *_sipp_common(), "-m", "2", "-l", "2", "-r", "10",
                       "-d", "1000", "-s", "100", "-p", str(free_udp_port()),
                       "-mp", str(free_udp_port()), f"127.0.0.1:{port}", name="uac")
    assert uac.wait(25) == 0, uac.describe()
    assert uas.wait(10) == 0, uas.describe()


@pytest.mark.e2e
def test_sipp_uac_call_audio_reaches_a_pjsua_agent(
        sipp_factory: SippFactory, phone_factory: PhoneFactory, tmp_recordings: Path) -> None:
    """The 440 Hz that uac_call.xml streams is what a recording pjsua2 agent hears."""
    write_ulaw_tone(sipp_factory.cwd / "caller_audio.ulaw", 440)
    agent = phone_factory("--role", "agent", "--record", str(tmp_recordings / "agent.wav"),
                          "--timeout", "15", name="agent")
    uac = sipp_factory("uac_call.xml", *_sipp_common(), "-m", "1", "-d", "1500", "-s", "100",
                       "-p", str(free_udp_port()), "-mp", str(free_udp_port()),
                       f"127.0.0.1:{agent.port}", name="uac")
    assert uac.wait(20) == 0, uac.describe()
    assert agent.wait_exit(10) == 0
    x = mono(tmp_recordings / "agent.wav")
    assert tone_present(x[RATE // 4:], RATE, 440, min_ratio=0.8)


@pytest.mark.e2e
def test_pjsua_caller_hears_itself_from_echoing_sipp_uas(
        sipp_factory: SippFactory, phone_factory: PhoneFactory, tmp_recordings: Path) -> None:
    """A pjsua2 caller (440 Hz) answered by uas_answer.xml -rtp_echo records its own tone."""
    port = free_udp_port()
    uas = sipp_factory("uas_answer.xml", *_sipp_common(), "-m", "1", "-p", str(port),
                       "-mp", str(free_udp_port()), "-rtp_echo", name="uas")
    caller = phone_factory("--role", "caller", "--dial", f"sip:agent@127.0.0.1:{port}",
                           "--tone", "440", "--record", str(tmp_recordings / "caller.wav"),
                           "--hangup-after", "1.5", "--timeout", "15", name="caller")
    assert caller.wait_exit(15) == 0
    assert caller.done is not None and caller.done["calls"][0]["confirmed"] is True
    assert uas.wait(10) == 0, uas.describe()
    x = mono(tmp_recordings / "caller.wav")
    assert tone_present(x[RATE // 4:], RATE, 440, min_ratio=0.8)
