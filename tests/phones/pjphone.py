#!/usr/bin/env python3
"""A scriptable pjsua2 SIP phone for end-to-end tests, run as a subprocess.

One phone per process (pjsua2 allows one Endpoint per process; the wheel caps
a process at 4 calls). SIP over UDP bound to ``--bind`` only, no STUN/ICE, the
null audio device, PCMU then PCMA offered. Its audio source is a continuous
sine (``--tone HZ``) or a looped WAV (``--play PATH``); ``--record PATH``
writes what it hears (PATH may contain ``{n}``, the 1-based call number, for
one file per call; otherwise all calls share one file).

Every event is one JSON object per line on stdout::

    {"event": "ready", "port": 5072, "uri": "sip:agent@127.0.0.1:5072", ...}
    {"event": "dialing", "call": 1, "uri": ...}                  (caller)
    {"event": "incoming", "call": 1, "from": ..., "to": ..., "call_id": ...}
    {"event": "state", "call": 1, "state": "EARLY"|"CONFIRMED"|"DISCONNECTED"|...,
     "code": 200, "reason": "OK", "call_id": ...}
    {"event": "media", "call": 1, "status": "ACTIVE"|"REMOTE_HOLD"|...}
    {"event": "hangup", "call": 1, "why": "hangup-after"|...}
    {"event": "reinvite", "call": 1}                             (--reinvite-after)
    {"event": "hold", "call": 1} / {"event": "unhold", "call": 1}  (--hold-after, --unhold-after)
    {"event": "done", "calls": [{"call": 1, "confirmed": true, "code": 200,
     "reason": "Normal call clearing", "connect_s": 2.0, "recording": ...}]}
    {"event": "timeout"} / {"event": "error", "message": ...}

Every line also carries ``ts`` (wall clock, seconds) and ``t`` (seconds since
the phone started). Exit status: 0 when the scenario completed (caller: its
call ended, however; agent: ``--calls`` calls ended), 2 on ``--timeout``,
1 on a setup error, 3 when stopped by SIGTERM/SIGINT first. Recordings are
closed (WAV header final) before ``done`` is printed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import struct
import sys
import tempfile
import time
import wave
from typing import Any

import pjsua2 as pj

_T0 = time.monotonic()
# JSON events get their own copy of stdout; fd 1 itself is pointed at stderr so
# anything the C library prints (pjlib logs before libInit) cannot corrupt it.
_EVENTS = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)


def emit(event: str, **fields: Any) -> None:
    """Print one JSON event line and flush it."""
    fields = {"event": event, **fields, "ts": round(time.time(), 4),
              "t": round(time.monotonic() - _T0, 4)}
    _EVENTS.write(json.dumps(fields) + "\n")
    _EVENTS.flush()


def write_sine_wav(path: str, freq: float, rate: int = 8000, seconds: float = 1.0,
                   amplitude: float = 0.3) -> None:
    """Write a mono 16-bit sine WAV; whole-Hz tones loop without a seam at 1 s."""
    n = int(rate * seconds)
    peak = amplitude * 32767.0
    step = 2.0 * math.pi * freq / rate
    frames = struct.pack(f"<{n}h", *(int(round(peak * math.sin(step * i))) for i in range(n)))
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)


def fix_wav_sizes(path: str) -> None:
    """Write the RIFF and data sizes of a 44-byte-header PCM WAV from its length.

    The wheel's recorder does not always finalise the header when it is
    destroyed; the audio itself is complete, so the sizes are all that is missing.
    """
    with open(path, "r+b") as f:
        header = f.read(44)
        if len(header) < 44 or header[:4] != b"RIFF" or header[36:40] != b"data":
            return
        size = os.fstat(f.fileno()).st_size
        f.seek(4)
        f.write(struct.pack("<I", size - 8))
        f.seek(40)
        f.write(struct.pack("<I", size - 44))


class _StderrLog(pj.LogWriter):  # type: ignore[misc]
    """Send pjsip's own log to stderr so stdout stays pure JSON."""

    def write(self, entry: Any) -> None:
        sys.stderr.write(entry.msg if entry.msg.endswith("\n") else entry.msg + "\n")


_STATES = {
    pj.PJSIP_INV_STATE_NULL: "NULL",
    pj.PJSIP_INV_STATE_CALLING: "CALLING",
    pj.PJSIP_INV_STATE_INCOMING: "INCOMING",
    pj.PJSIP_INV_STATE_EARLY: "EARLY",
    pj.PJSIP_INV_STATE_CONNECTING: "CONNECTING",
    pj.PJSIP_INV_STATE_CONFIRMED: "CONFIRMED",
    pj.PJSIP_INV_STATE_DISCONNECTED: "DISCONNECTED",
}
_MEDIA = {
    pj.PJSUA_CALL_MEDIA_NONE: "NONE",
    pj.PJSUA_CALL_MEDIA_ACTIVE: "ACTIVE",
    pj.PJSUA_CALL_MEDIA_LOCAL_HOLD: "LOCAL_HOLD",
    pj.PJSUA_CALL_MEDIA_REMOTE_HOLD: "REMOTE_HOLD",
    pj.PJSUA_CALL_MEDIA_ERROR: "ERROR",
}


class PhoneCall(pj.Call):  # type: ignore[misc]
    """One call; forwards pjsua2 callbacks to the owning Phone."""

    def __init__(self, phone: Phone, acc: pj.Account, number: int,
                 call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(acc, call_id)
        self.phone = phone
        self.number = number
        self.started = time.monotonic()
        self.confirmed_at: float | None = None
        self.answer_at: float | None = None
        self.hangup_at: float | None = None
        self.reinvite_at: float | None = None
        self.hold_at: float | None = None
        self.unhold_at: float | None = None
        self.ended = False
        self.hangup_sent = False
        self.code = 0
        self.reason = ""
        self.call_id = ""
        self.connect_s = 0.0
        self.recording: str | None = None

    def onCallState(self, prm: Any) -> None:  # noqa: N802 (pjsua2 name)
        self.phone.on_state(self)

    def onCallMediaState(self, prm: Any) -> None:  # noqa: N802
        self.phone.on_media(self)


class PhoneAccount(pj.Account):  # type: ignore[misc]
    """The one local identity; routes incoming INVITEs to the Phone."""

    def __init__(self, phone: Phone) -> None:
        super().__init__()
        self.phone = phone

    def onIncomingCall(self, prm: Any) -> None:  # noqa: N802
        self.phone.on_incoming(prm.callId)


class Phone:
    """The phone's scenario: caller or agent, driven by a polling main loop."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.calls: list[PhoneCall] = []
        self.recorders: dict[str, Any] = {}
        self.player: Any = None
        self.stop_requested = False
        self.tmpdir = tempfile.mkdtemp(prefix="pjphone-")
        self.ep = pj.Endpoint()
        self.acc: PhoneAccount | None = None
        self.port = 0

    # -- setup ---------------------------------------------------------------
    def start(self) -> None:
        a = self.args
        ep = self.ep
        ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.userAgent = "ccswitch-test-phone"
        cfg.uaConfig.maxCalls = 4
        cfg.logConfig.level = a.log_level
        cfg.logConfig.consoleLevel = a.log_level
        self.log_writer = _StderrLog()
        cfg.logConfig.writer = self.log_writer
        cfg.medConfig.clockRate = 8000
        cfg.medConfig.sndClockRate = 8000
        cfg.medConfig.noVad = True
        cfg.medConfig.ecTailLen = 0
        ep.libInit(cfg)

        tcfg = pj.TransportConfig()
        tcfg.port = a.port
        tcfg.boundAddress = a.bind
        tcfg.publicAddress = a.bind
        kind = {"udp": pj.PJSIP_TRANSPORT_UDP, "tcp": pj.PJSIP_TRANSPORT_TCP,
                "tls": pj.PJSIP_TRANSPORT_TLS}[a.transport]
        if a.transport == "tls":
            tls = tcfg.tlsConfig
            tls.method = pj.PJSIP_TLSV1_2_METHOD
            if a.tls_ca:
                tls.CaListFile = a.tls_ca
                tls.verifyServer = True
            if a.tls_cert:
                tls.certFile = a.tls_cert
                tls.privKeyFile = a.tls_key
        tid = ep.transportCreate(kind, tcfg)
        ep.libStart()
        ep.audDevManager().setNullDev()
        self.port = int(ep.transportGetInfo(tid).localName.rsplit(":", 1)[1])

        for codec in ep.codecEnum2():
            ep.codecSetPriority(codec.codecId, 0)
        for prio, name in enumerate(a.codecs.split(",")):
            ep.codecSetPriority(f"{name.strip().upper()}/8000/1", 255 - prio)

        acfg = pj.AccountConfig()
        scheme = "sips" if a.transport == "tls" else "sip"
        param = ";transport=tcp" if a.transport == "tcp" else ""
        acfg.idUri = f"{scheme}:{a.user}@{a.bind}:{self.port}{param}"
        acfg.sipConfig.transportId = tid
        acfg.mediaConfig.transportConfig.boundAddress = a.bind
        acfg.mediaConfig.transportConfig.publicAddress = a.bind
        acfg.mediaConfig.transportConfig.port = a.rtp_port
        acfg.natConfig.iceEnabled = False
        acfg.natConfig.sdpNatRewriteUse = 0
        acfg.natConfig.viaRewriteUse = 0
        acfg.natConfig.contactRewriteUse = 0
        self.acc = PhoneAccount(self)
        self.acc.create(acfg, True)

        source = a.play
        if a.tone:
            source = os.path.join(self.tmpdir, f"tone-{a.tone:g}.wav")
            write_sine_wav(source, a.tone, amplitude=a.level)
        if source:
            self.player = pj.AudioMediaPlayer()
            self.player.createPlayer(source, 0)  # 0 = loop forever
        emit("ready", port=self.port, uri=acfg.idUri, role=a.role, pid=os.getpid())

    # -- callbacks (main thread, from libHandleEvents) -------------------------
    def on_incoming(self, call_id: int) -> None:
        assert self.acc is not None
        call = PhoneCall(self, self.acc, len(self.calls) + 1, call_id)
        self.calls.append(call)
        ci = call.getInfo()
        call.call_id = ci.callIdString
        emit("incoming", call=call.number, **{"from": ci.remoteUri}, to=ci.localUri,
             call_id=ci.callIdString)
        a = self.args
        prm = pj.CallOpParam()
        if a.role != "agent" or len(self.calls) > a.calls:
            prm.statusCode = 486
            call.answer(prm)
            return
        if a.reject:
            prm.statusCode = a.reject
            call.answer(prm)
            return
        prm.statusCode = 180
        call.answer(prm)
        if not a.no_answer:
            call.answer_at = time.monotonic() + a.answer_delay

    def on_state(self, call: PhoneCall) -> None:
        ci = call.getInfo()
        state = _STATES.get(ci.state, str(ci.state))
        call.code = int(ci.lastStatusCode)
        call.reason = str(ci.lastReason)
        call.call_id = ci.callIdString
        emit("state", call=call.number, state=state, code=call.code, reason=call.reason,
             call_id=call.call_id)
        now = time.monotonic()
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED and call.confirmed_at is None:
            call.confirmed_at = now
            if self.args.hangup_after is not None:
                call.hangup_at = now + self.args.hangup_after
            if self.args.reinvite_after is not None:
                call.reinvite_at = now + self.args.reinvite_after
            if self.args.hold_after is not None:
                call.hold_at = now + self.args.hold_after
                if self.args.unhold_after is not None:
                    call.unhold_at = call.hold_at + self.args.unhold_after
        elif ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            call.ended = True
            call.answer_at = call.hangup_at = call.reinvite_at = None
            call.hold_at = call.unhold_at = None
            call.connect_s = round(float(ci.connectDuration.sec)
                                   + ci.connectDuration.msec / 1000.0, 3)

    def on_media(self, call: PhoneCall) -> None:
        ci = call.getInfo()
        for i, mi in enumerate(ci.media):
            if mi.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            emit("media", call=call.number, status=_MEDIA.get(mi.status, str(mi.status)))
            if mi.status not in (pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_REMOTE_HOLD):
                continue
            aud = call.getAudioMedia(i)
            if self.player is not None:
                self.player.startTransmit(aud)
            rec = self._recorder_for(call)
            if rec is not None:
                aud.startTransmit(rec)

    def _recorder_for(self, call: PhoneCall) -> Any:
        if not self.args.record:
            return None
        path = self.args.record.replace("{n}", str(call.number))
        call.recording = path
        if path not in self.recorders:
            rec = pj.AudioMediaRecorder()
            rec.createRecorder(path)
            self.recorders[path] = rec
        return self.recorders[path]

    # -- scenario --------------------------------------------------------------
    def dial(self) -> None:
        assert self.acc is not None
        call = PhoneCall(self, self.acc, 1)
        self.calls.append(call)
        emit("dialing", call=1, uri=self.args.dial)
        prm = pj.CallOpParam(True)
        call.makeCall(self.args.dial, prm)
        if self.args.hangup_after_start is not None:
            call.hangup_at = call.started + self.args.hangup_after_start

    def hangup(self, call: PhoneCall, why: str) -> None:
        if call.ended or call.hangup_sent:
            return
        call.hangup_sent = True
        emit("hangup", call=call.number, why=why)
        try:
            call.hangup(pj.CallOpParam())
        except pj.Error as exc:
            emit("error", call=call.number, message=exc.info())

    def hangup_all(self, why: str) -> None:
        for call in self.calls:
            self.hangup(call, why)

    def tick(self, now: float) -> None:
        for call in self.calls:
            if call.ended:
                continue
            if call.answer_at is not None and now >= call.answer_at:
                call.answer_at = None
                prm = pj.CallOpParam()
                prm.statusCode = 200
                call.answer(prm)
            if call.reinvite_at is not None and now >= call.reinvite_at:
                call.reinvite_at = None
                emit("reinvite", call=call.number)
                try:
                    call.reinvite(pj.CallOpParam(True))
                except pj.Error as exc:
                    emit("error", call=call.number, message=exc.info())
            if call.hold_at is not None and now >= call.hold_at:
                call.hold_at = None
                emit("hold", call=call.number)
                try:
                    call.setHold(pj.CallOpParam(True))  # re-INVITE with a=sendonly
                except pj.Error as exc:
                    emit("error", call=call.number, message=exc.info())
            if call.unhold_at is not None and now >= call.unhold_at:
                call.unhold_at = None
                emit("unhold", call=call.number)
                prm = pj.CallOpParam(True)
                prm.opt.flag = pj.PJSUA_CALL_UNHOLD
                try:
                    call.reinvite(prm)
                except pj.Error as exc:
                    emit("error", call=call.number, message=exc.info())
            if call.hangup_at is not None and now >= call.hangup_at:
                call.hangup_at = None
                self.hangup(call, "hangup-after")

    def complete(self) -> bool:
        ended = sum(1 for c in self.calls if c.ended)
        if self.args.role == "caller":
            return ended >= 1
        return ended >= self.args.calls and all(c.ended for c in self.calls)

    def run(self) -> int:
        a = self.args
        deadline = _T0 + a.timeout
        try:
            self.start()
            if a.role == "caller":
                self.dial()
        except pj.Error as exc:
            emit("error", message=exc.info())
            return self.finish(1)
        pending: int | None = None  # exit code once the wind-down ends
        wind_down_until = 0.0
        while True:
            self.ep.libHandleEvents(10)
            now = time.monotonic()
            self.tick(now)
            if pending is None:
                if self.complete():
                    return self.finish(0)
                if self.stop_requested or now >= deadline:
                    pending = 3 if self.stop_requested else 2
                    if pending == 2:
                        emit("timeout")
                    self.hangup_all("stopped" if pending == 3 else "timeout")
                    wind_down_until = now + 2.0
            elif now >= wind_down_until or all(c.ended for c in self.calls):
                return self.finish(pending)

    def finish(self, code: int) -> int:
        """Hang up, close recordings, report ``done`` (or ``exit``); returns ``code``."""
        try:
            self.ep.hangupAllCalls()
            end = time.monotonic() + 0.3
            while time.monotonic() < end:
                self.ep.libHandleEvents(10)
        except pj.Error:
            pass
        paths = list(self.recorders)
        self.recorders.clear()  # destroys the recorders
        for path in paths:
            fix_wav_sizes(path)
        self.player = None
        summary = [{"call": c.number, "confirmed": c.confirmed_at is not None,
                    "code": c.code, "reason": c.reason, "call_id": c.call_id,
                    "connect_s": c.connect_s, "recording": c.recording}
                   for c in self.calls]
        if code == 0:
            emit("done", calls=summary)
        else:
            emit("exit", code=code, calls=summary)
        # No libDestroy(): main() ends the process with os._exit() right after,
        # and a pjsua2 Call object still referenced anywhere (a loop variable,
        # a traceback) would abort in its destructor once the library is gone.
        return code


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--role", choices=("caller", "agent"), required=True)
    p.add_argument("--bind", default="127.0.0.1", help="local IP for SIP and RTP")
    p.add_argument("--port", type=int, default=0, help="SIP port; 0 = any free")
    p.add_argument("--transport", choices=("udp", "tcp", "tls"), default="udp",
                   help="the SIP transport to listen and send on")
    p.add_argument("--tls-ca", default=None,
                   help="TLS: CA file the far end's certificate must chain to (verified)")
    p.add_argument("--tls-cert", default=None, help="TLS: our certificate (PEM)")
    p.add_argument("--tls-key", default=None, help="TLS: the key of --tls-cert (PEM)")
    p.add_argument("--rtp-port", type=int, default=0,
                   help="first RTP port tried (pjsua default range when 0)")
    p.add_argument("--user", default=None, help="user part of our URI (default: role)")
    p.add_argument("--codecs", default="PCMU,PCMA", help="offered codecs, in order")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--tone", type=float, default=None, help="send a continuous sine, Hz")
    src.add_argument("--play", default=None, help="send this WAV file, looped")
    p.add_argument("--level", type=float, default=0.3, help="tone amplitude, 0..1")
    p.add_argument("--record", default=None, help="record what we hear to this WAV")
    p.add_argument("--dial", default=None, help="caller: SIP URI to call")
    hang = p.add_mutually_exclusive_group()
    hang.add_argument("--hangup-after", type=float, default=None,
                      help="hang up this many seconds after CONFIRMED")
    hang.add_argument("--hangup-after-start", type=float, default=None,
                      help="caller: hang up (CANCEL/BYE) this many seconds after dialing")
    ans = p.add_mutually_exclusive_group()
    ans.add_argument("--answer-delay", type=float, default=0.0,
                     help="agent: ring (180) this long, then answer 200")
    ans.add_argument("--reject", type=int, default=None, help="agent: answer with this code")
    ans.add_argument("--no-answer", action="store_true", help="agent: ring forever")
    p.add_argument("--reinvite-after", type=float, default=None,
                   help="send a re-INVITE this many seconds after CONFIRMED")
    p.add_argument("--hold-after", type=float, default=None,
                   help="put the call on hold (sendonly re-INVITE) this many seconds after "
                        "CONFIRMED")
    p.add_argument("--unhold-after", type=float, default=None,
                   help="with --hold-after: resume (sendrecv re-INVITE) this many seconds "
                        "after the hold")
    p.add_argument("--calls", type=int, default=1, help="agent: exit after this many calls")
    p.add_argument("--timeout", type=float, default=60.0, help="give up (exit 2) after this")
    p.add_argument("--log-level", type=int, default=1, help="pjsip log level to stderr")
    args = p.parse_args(argv)
    if args.unhold_after is not None and args.hold_after is None:
        p.error("--unhold-after needs --hold-after")
    if args.role == "caller" and not args.dial:
        p.error("--role caller needs --dial URI")
    if args.role == "agent" and args.hangup_after_start is not None:
        p.error("--hangup-after-start is for callers")
    if args.reject is not None and not 300 <= args.reject <= 699:
        p.error("--reject needs a final error code 300..699")
    if args.user is None:
        args.user = args.role
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    phone = Phone(args)

    def _stop(signum: int, frame: Any) -> None:
        phone.stop_requested = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    code = phone.run()
    _EVENTS.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    # pjsua2's SWIG objects can crash in interpreter teardown; everything that
    # matters (recordings, the done line) is already flushed.
    os._exit(code)


if __name__ == "__main__":
    main()
