"""Fake SIP peers for the call runtime's tests: a transaction layer and server
transactions that record what the runtime sends, and SIP messages built by hand.

Media is the real MediaEngine on the test's Clock, on a reactor that binds nothing.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Callable, cast

import attrs
from twisted.internet.task import Clock

from ccswitch.calls.runtime import CallController
from ccswitch.media.engine import MediaEngine
from ccswitch.metrics.registry import Metrics
from ccswitch.model import (
    Agent, CdrConfig, Config, Dialplan, Group, HttpConfig, Queue, RecordingConfig, Route,
    RtpConfig, SipConfig, Vendor,
)
from ccswitch.recording.finished import FinishedCall
from ccswitch.routing.engine import RoutingEngine
from ccswitch.sip.message import Request, Response, parse_message
from ccswitch.sip.transaction import ServerTransaction, TransactionLayer

REPO = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000.0
CALLER = ("127.0.0.1", 5062)
SDP_OFFER = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
             b"m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
SDP_ANSWER = SDP_OFFER.replace(b"40000", b"40002")


@attrs.define
class SentRequest:
    """A request the runtime sent through the fake layer, with its callbacks."""

    request: Request
    destination: tuple[str, int]
    on_response: Callable[[Response], None]
    on_timeout: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True

    def answer(self, status: int, body: bytes = b"", tag: str = "far") -> None:
        """The far end answers ``status`` (with ``body``)."""
        self.on_response(response_to(self.request, status, body, tag))


class FakeLayer:
    """Records requests and ACKs instead of sending them."""

    def __init__(self) -> None:
        self.sent: list[SentRequest] = []
        self.acks: list[Request] = []

    def request(self, request: Request, destination: tuple[str, int], *,
                on_response: Callable[[Response], None], on_timeout: Callable[[], None],
                on_send_error: Callable[[], None] | None = None) -> SentRequest:
        sent = SentRequest(request, destination, on_response, on_timeout)
        self.sent.append(sent)
        return sent

    def send_ack(self, ack: Request, destination: tuple[str, int]) -> None:
        self.acks.append(ack)

    def invites(self) -> list[SentRequest]:
        return [s for s in self.sent if s.request.method == "INVITE"]

    def byes(self) -> list[SentRequest]:
        return [s for s in self.sent if s.request.method == "BYE"]


class FakeServerTx:
    """A server transaction that keeps the responses the runtime gave."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.responses: list[int] = []
        self.bodies: list[bytes] = []
        self.on_no_ack: Callable[[], None] | None = None

    @property
    def final_sent(self) -> bool:
        return any(status >= 200 for status in self.responses)

    def respond(self, status: int, reason: str | None = None, **kw: Any) -> None:
        self.responses.append(status)
        self.bodies.append(kw.get("body", b""))
        self.on_no_ack = kw.get("on_no_ack", self.on_no_ack)


def invite(call_id: str = "call-1", dialed: str = "100", body: bytes = SDP_OFFER) -> Request:
    text = (f"INVITE sip:{dialed}@127.0.0.1:5060 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-{call_id}\r\n"
            f"Max-Forwards: 70\r\n"
            f"From: <sip:5551234@127.0.0.1:5062>;tag=caller\r\n"
            f"To: <sip:{dialed}@127.0.0.1:5060>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
            f"Contact: <sip:5551234@127.0.0.1:5062>\r\n"
            f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n")
    return cast(Request, parse_message(text.encode() + body))


def bye(call_id: str, to_tag: str) -> Request:
    text = (f"BYE sip:ccswitch@127.0.0.1:5060 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-bye-{call_id}\r\n"
            f"Max-Forwards: 70\r\n"
            f"From: <sip:5551234@127.0.0.1:5062>;tag=caller\r\n"
            f"To: <sip:100@127.0.0.1:5060>;tag={to_tag}\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n")
    return cast(Request, parse_message(text.encode()))


def in_dialog(method: str, call_id: str, *, from_tag: str, to_tag: str, cseq: int,
              body: bytes = b"") -> Request:
    """A request from the far end inside an established dialog (re-INVITE, UPDATE)."""
    text = (f"{method} sip:ccswitch@127.0.0.1:5060 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-{method}-{cseq}-{call_id}\r\n"
            f"Max-Forwards: 70\r\n"
            f"From: <sip:far@127.0.0.1:5062>;tag={from_tag}\r\n"
            f"To: <sip:ccswitch@127.0.0.1:5060>;tag={to_tag}\r\n"
            f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
            f"Contact: <sip:far@127.0.0.1:5062>\r\n")
    if body:
        text += "Content-Type: application/sdp\r\n"
    text += f"Content-Length: {len(body)}\r\n\r\n"
    return cast(Request, parse_message(text.encode() + body))


def response_to(request: Request, status: int, body: bytes, tag: str) -> Response:
    to = request.headers.get("To")
    head = (f"SIP/2.0 {status} X\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-out\r\n"
            f"From: {request.headers.get('From')}\r\n"
            f"To: {to}{'' if status == 100 else f';tag={tag}'}\r\n"
            f"Call-ID: {request.call_id}\r\nCSeq: {request.cseq[0]} {request.method}\r\n"
            f"Contact: <sip:{tag}@127.0.0.1:5090>\r\n")
    if body:
        head += "Content-Type: application/sdp\r\n"
    head += f"Content-Length: {len(body)}\r\n\r\n"
    return cast(Response, parse_message(head.encode() + body))


class _Port:
    maxThroughput = 0

    def stopListening(self) -> None:
        return None


class _UdpReactor:
    """What MediaEngine needs from a reactor: UDP ports that bind nothing."""

    def listenUDP(self, port: int, protocol: Any, interface: str = "") -> _Port:
        return _Port()


@attrs.define
class Runtime:
    """A CallController on a Clock, between fake SIP peers and a real media engine."""

    controller: CallController
    engine: RoutingEngine
    layer: FakeLayer
    metrics: Metrics
    clock: Clock
    records: list[FinishedCall]

    def call(self, call_id: str = "call-1") -> FakeServerTx:
        request = invite(call_id)
        tx = FakeServerTx(request)
        self.controller.request_received(request, CALLER,
                                         cast(ServerTransaction, tx))
        return tx

    def caller_bye(self, call_id: str = "call-1") -> FakeServerTx:
        """The caller hangs up its (only) call: BYE in its dialog."""
        [call] = self.controller._calls.calls.values()
        request = bye(call_id, str(call.caller.dialog.local.tag))
        tx = FakeServerTx(request)
        self.controller.request_received(request, CALLER, cast(ServerTransaction, tx))
        return tx

    def caller_request(self, method: str, body: bytes = b"", cseq: int = 2) -> FakeServerTx:
        """The caller sends ``method`` (re-INVITE, UPDATE) in its call's dialog."""
        [call] = self.controller._calls.calls.values()
        request = in_dialog(method, call.caller.invite.call_id, from_tag="caller",
                            to_tag=str(call.caller.dialog.local.tag), cseq=cseq, body=body)
        tx = FakeServerTx(request)
        self.controller.request_received(request, CALLER, cast(ServerTransaction, tx))
        return tx

    def agent_request(self, ring: SentRequest, method: str, body: bytes = b"",
                      cseq: int = 1) -> FakeServerTx:
        """The answered agent of ``ring`` sends ``method`` in its dialog."""
        request = in_dialog(method, ring.request.call_id, from_tag="alice",
                            to_tag=str(ring.request.from_.tag), cseq=cseq, body=body)
        tx = FakeServerTx(request)
        self.controller.request_received(request, CALLER, cast(ServerTransaction, tx))
        return tx

    def cancel(self, invite_tx: FakeServerTx) -> None:
        """The caller CANCELs its INVITE."""
        self.controller.cancel_received(cast(ServerTransaction, invite_tx))

    def hear_notice(self) -> None:
        """Let the announcement (4 s) play out, in media ticks."""
        self.advance(4.5)

    def advance(self, seconds: float) -> None:
        for _ in range(int(seconds * 10)):
            self.clock.advance(0.1)

    def sample(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)


def dialplan(*, agents: tuple[str, ...] = ("alice",), vendors: tuple[Vendor, ...] = (),
             **queue_options: Any) -> Dialplan:
    queue = Queue(name="support", group="inhouse",
                  announcement=REPO / "dialplans" / "sounds" / "qa_notice.wav",
                  music_on_hold=None, **queue_options)
    return Dialplan(
        agents={a: Agent(id=a, uri=f"sip:{a}@127.0.0.1:5090", no_response_timeout=0.0)
                for a in agents},
        groups={"inhouse": Group(name="inhouse", agents=agents)},
        queues={"support": queue}, vendors={v.name: v for v in vendors},
        routes=(Route(queue="support", number="100"),))


def runtime(directory: Path, plan: Dialplan, *, reservations: bool = False,
            shared: Any = None) -> Runtime:
    config = Config(sip=SipConfig(trusted=(ipaddress.ip_network("127.0.0.0/8"),)),
                    rtp=RtpConfig(), http=HttpConfig(),
                    recordings=RecordingConfig(directory=directory / "recordings"),
                    cdr=CdrConfig(database=directory / "cdr.sqlite"),
                    dialplan_dir=directory, dialplan=plan)
    clock = Clock()
    clock.advance(T0)
    media = MediaEngine(_UdpReactor(), address="127.0.0.1", port_min=20000, port_max=20200,
                        clock=clock)
    media.start()
    engine = RoutingEngine(plan, clock=clock, reservations=reservations)
    metrics = Metrics()
    records: list[FinishedCall] = []
    controller = CallController(clock=clock, config=config, engine=engine, media=media,
                                metrics=metrics, on_record=records.append)
    if shared is not None:
        controller.share(shared)
    layer = FakeLayer()
    controller.attach(cast(TransactionLayer, layer), 5060)
    return Runtime(controller, engine, layer, metrics, clock, records)
