"""The RFC 3261 transaction layer, driven by twisted.internet.task.Clock."""

from __future__ import annotations

from typing import Callable

import attrs
import pytest
from twisted.internet.task import Clock

from ccswitch.sip.hop import Hop
from ccswitch.sip.message import Headers, Request, Response, SipURI, make_response, parse_message
from ccswitch.sip.transaction import ClientTransaction, ServerTransaction, TransactionLayer
from ccswitch.sip.transaction_states import State, Timers

PEER = ("10.0.0.2", 5060)
LOCAL = ("10.0.0.1", 5070)
T1 = 0.5


@attrs.define
class Sent:
    at: float
    message: Request | Response
    addr: tuple[str, int]


@attrs.define
class FakeTU:
    """Records every TU callback; ``on_request``/``on_cancel`` script the answers."""

    requests: list[tuple[Request, tuple[str, int], ServerTransaction]] = attrs.Factory(list)
    acks: list[Request] = attrs.Factory(list)
    cancels: list[ServerTransaction] = attrs.Factory(list)
    strays: list[Response] = attrs.Factory(list)
    on_request: Callable[[ServerTransaction], None] | None = None
    on_cancel: Callable[[ServerTransaction], None] | None = None

    def request_received(self, request: Request, source: tuple[str, int],
                         tx: ServerTransaction) -> None:
        self.requests.append((request, source, tx))
        if self.on_request is not None:
            self.on_request(tx)

    def ack_received(self, request: Request, source: tuple[str, int]) -> None:
        self.acks.append(request)

    def cancel_received(self, invite_tx: ServerTransaction) -> None:
        self.cancels.append(invite_tx)
        if self.on_cancel is not None:
            self.on_cancel(invite_tx)

    def stray_response(self, response: Response, source: tuple[str, int]) -> None:
        self.strays.append(response)


@attrs.define
class Env:
    clock: Clock
    tu: FakeTU
    layer: TransactionLayer
    sent: list[Sent]

    def responses(self, status: int | None = None) -> list[Sent]:
        return [s for s in self.sent if isinstance(s.message, Response)
                and (status is None or s.message.status == status)]

    def requests(self, method: str) -> list[Sent]:
        return [s for s in self.sent if isinstance(s.message, Request)
                and s.message.method == method]

    def advance(self, seconds: float, step: float = 0.125) -> None:
        """Advance the clock in exact binary steps (bounded count) so timers fire on time."""
        steps, rest = divmod(seconds, step)
        for _ in range(int(steps)):
            self.clock.advance(step)
        self.clock.advance(rest)


@pytest.fixture
def env() -> Env:
    clock = Clock()
    sent: list[Sent] = []
    tu = FakeTU()

    def send(data: bytes, hop: Hop) -> None:
        sent.append(Sent(clock.seconds(), parse_message(data), hop.address))

    layer = TransactionLayer(clock, send, tu, local_via_host=LOCAL[0], local_port=LOCAL[1])
    return Env(clock, tu, layer, sent)


def request(method: str = "INVITE", *, branch: str = "z9hG4bKabc1", cseq: int = 1,
            call_id: str = "call-1", via_host: str = PEER[0], via_port: int = PEER[1],
            rport: bool = False, to_tag: str | None = None) -> Request:
    """A request as a phone at PEER would send it."""
    text = (
        f"{method} sip:100@10.0.0.1:5070 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {via_host}:{via_port};branch={branch}{';rport' if rport else ''}\r\n"
        "From: \"Alice\" <sip:alice@10.0.0.2>;tag=from1\r\n"
        f"To: <sip:100@10.0.0.1>{';tag=' + to_tag if to_tag else ''}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def outgoing(method: str = "INVITE", *, routes: tuple[str, ...] = ()) -> Request:
    """A request the TU hands to the layer (no Via yet)."""
    headers = Headers()
    for route in routes:
        headers.add("Route", route)
    headers.add("From", "<sip:ccswitch@10.0.0.1>;tag=ours1")
    headers.add("To", "<sip:agent@10.0.0.3>")
    headers.add("Call-ID", "out-1@10.0.0.1")
    headers.add("CSeq", f"1 {method}")
    headers.add("Contact", "<sip:ccswitch@10.0.0.1:5070>")
    return Request(method=method, uri=SipURI.parse("sip:agent@10.0.0.3"), headers=headers)


AGENT = ("10.0.0.3", 5060)


@attrs.define
class ClientRecord:
    responses: list[Response] = attrs.Factory(list)
    timeouts: int = 0


def start_client(env: Env, method: str = "INVITE",
                 routes: tuple[str, ...] = ()) -> tuple[ClientTransaction, ClientRecord]:
    record = ClientRecord()

    def timed_out() -> None:
        record.timeouts += 1

    tx = env.layer.request(outgoing(method, routes=routes), AGENT,
                           on_response=record.responses.append, on_timeout=timed_out)
    return tx, record


def answer(tx: ClientTransaction, status: int, to_tag: str | None = "agent-tag") -> Response:
    """The response the agent phone would send to the transaction's request."""
    return make_response(tx.request, status, to_tag=to_tag if status > 100 else None)


def send_times(sent: list[Sent]) -> list[float]:
    return [round(s.at, 2) for s in sent]


# -- INVITE server transactions ------------------------------------------------

def test_invite_gets_100_trying_before_tu_sees_it(env: Env) -> None:
    """The layer answers 100 Trying at once, before the TU is called."""
    seen_before: list[int] = []
    env.tu.on_request = lambda tx: seen_before.append(len(env.responses(100)))
    env.layer.receive(request(), PEER)
    assert seen_before == [1]
    assert env.responses(100)[0].message.to.tag is None


def test_2xx_retransmitted_doubling_up_to_t2(env: Env) -> None:
    """Without an ACK the 200 is resent at T1, 2T1, 4T1... capped at T2."""
    env.layer.receive(request(), PEER)
    env.tu.requests[0][2].respond(200, to_tag="uas1")
    env.advance(20)
    assert send_times(env.responses(200)) == [0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5]


def test_ack_stops_2xx_retransmission_and_reaches_tu(env: Env) -> None:
    """An ACK (new branch, same Call-ID and CSeq) stops the 200 and goes to the TU."""
    env.layer.receive(request(), PEER)
    env.tu.requests[0][2].respond(200, to_tag="uas1")
    env.advance(1.0)
    env.layer.receive(request("ACK", branch="z9hG4bKack1", to_tag="uas1"), PEER)
    before = len(env.responses(200))
    env.advance(10)
    assert len(env.responses(200)) == before == 2
    assert [a.method for a in env.tu.acks] == ["ACK"]


def test_on_no_ack_called_after_64_t1(env: Env) -> None:
    """A 2xx never ACKed calls on_no_ack once at 64*T1 and ends the transaction."""
    calls: list[float] = []
    env.layer.receive(request(), PEER)
    env.tu.requests[0][2].respond(200, to_tag="uas1",
                                  on_no_ack=lambda: calls.append(env.clock.seconds()))
    env.advance(40)
    assert calls == [pytest.approx(64 * T1)]
    assert env.layer.transaction_count == 0


def test_on_no_ack_not_called_after_ack(env: Env) -> None:
    """An ACKed 2xx never triggers on_no_ack."""
    calls: list[int] = []
    env.layer.receive(request(), PEER)
    env.tu.requests[0][2].respond(200, to_tag="uas1", on_no_ack=lambda: calls.append(1))
    env.layer.receive(request("ACK", branch="z9hG4bKack1", to_tag="uas1"), PEER)
    env.advance(40)
    assert calls == []


def test_retransmitted_invite_gets_last_provisional(env: Env) -> None:
    """A retransmitted INVITE in Proceeding gets the last provisional again."""
    env.layer.receive(request(), PEER)
    env.tu.requests[0][2].respond(180, to_tag="uas1")
    env.layer.receive(request(), PEER)
    assert [s.message.status for s in env.responses()] == [100, 180, 180]  # type: ignore[union-attr]
    assert len(env.tu.requests) == 1


def test_retransmitted_invite_before_any_tu_answer_gets_100(env: Env) -> None:
    """A retransmitted INVITE before the TU answered gets the 100 Trying again."""
    env.layer.receive(request(), PEER)
    env.layer.receive(request(), PEER)
    assert len(env.responses(100)) == 2


def test_retransmitted_invite_absorbed_when_accepted(env: Env) -> None:
    """In Accepted (RFC 6026) a retransmitted INVITE is absorbed, not passed on."""
    env.layer.receive(request(), PEER)
    env.tu.requests[0][2].respond(200, to_tag="uas1")
    count = len(env.sent)
    env.layer.receive(request(), PEER)
    assert len(env.sent) == count
    assert len(env.tu.requests) == 1


def test_cancel_answered_200_and_tu_told(env: Env) -> None:
    """A matching CANCEL gets 200 from the layer and cancel_received with the INVITE tx."""
    env.layer.receive(request(), PEER)
    invite_tx = env.tu.requests[0][2]
    env.tu.on_cancel = lambda tx: tx.respond(487)
    env.layer.receive(request("CANCEL"), PEER)
    ok = env.responses(200)[0].message
    assert ok.cseq == (1, "CANCEL")
    assert env.tu.cancels == [invite_tx]
    terminated = env.responses(487)[0].message
    assert terminated.cseq == (1, "INVITE")
    assert terminated.to.tag is not None and terminated.to.tag == ok.to.tag


def test_cancel_without_invite_gets_481(env: Env) -> None:
    """A CANCEL matching no INVITE transaction is answered 481 and not passed on."""
    env.layer.receive(request("CANCEL"), PEER)
    assert [s.message.status for s in env.responses()] == [481]  # type: ignore[union-attr]
    assert env.tu.cancels == [] and env.tu.requests == []


def test_cancel_after_final_does_not_reach_tu(env: Env) -> None:
    """A CANCEL after the INVITE's final response gets 200 but changes nothing."""
    env.layer.receive(request(), PEER)
    env.tu.requests[0][2].respond(200, to_tag="uas1")
    env.layer.receive(request("CANCEL"), PEER)
    assert env.tu.cancels == []
    assert env.responses(200)[-1].message.cseq == (1, "CANCEL")


def test_layer_answers_487_when_tu_leaves_cancelled_invite_open(env: Env) -> None:
    """If cancel_received leaves the INVITE unanswered the layer sends 487 itself."""
    env.layer.receive(request(), PEER)
    env.layer.receive(request("CANCEL"), PEER)
    assert len(env.responses(487)) == 1
    assert env.tu.requests[0][2].final_sent


def test_retransmitted_cancel_answered_from_cache(env: Env) -> None:
    """A retransmitted CANCEL gets its 200 again without a second cancel_received."""
    env.layer.receive(request(), PEER)
    env.tu.on_cancel = lambda tx: tx.respond(487)
    env.layer.receive(request("CANCEL"), PEER)
    env.layer.receive(request("CANCEL"), PEER)
    assert len([s for s in env.responses(200) if s.message.cseq[1] == "CANCEL"]) == 2
    assert len(env.tu.cancels) == 1


def test_non_2xx_final_retransmitted_until_ack(env: Env) -> None:
    """A 486 is resent by timer G (T1 doubling to T2) until the ACK arrives."""
    env.layer.receive(request(), PEER)
    env.tu.requests[0][2].respond(486, to_tag="uas1")
    env.advance(4.0)
    env.layer.receive(request("ACK", to_tag="uas1"), PEER)
    env.advance(10)
    assert send_times(env.responses(486)) == [0, 0.5, 1.5, 3.5]


def test_ack_for_non_2xx_absorbed(env: Env) -> None:
    """The ACK for a non-2xx final is absorbed by the transaction, not given to the TU."""
    env.layer.receive(request(), PEER)
    env.tu.requests[0][2].respond(486, to_tag="uas1")
    env.layer.receive(request("ACK", to_tag="uas1"), PEER)
    env.layer.receive(request("ACK", to_tag="uas1"), PEER)
    assert env.tu.acks == []
    assert env.tu.requests[0][2].state is State.CONFIRMED


def test_timer_h_calls_on_no_ack_for_non_2xx(env: Env) -> None:
    """A 486 never ACKed calls on_no_ack at 64*T1 and ends the transaction."""
    calls: list[float] = []
    env.layer.receive(request(), PEER)
    env.tu.requests[0][2].respond(486, to_tag="uas1",
                                  on_no_ack=lambda: calls.append(env.clock.seconds()))
    env.advance(40)
    assert calls == [pytest.approx(64 * T1)]
    assert env.layer.transaction_count == 0


def test_second_final_response_is_ignored(env: Env) -> None:
    """A second final response is logged and ignored; the state stays as it was."""
    env.layer.receive(request(), PEER)
    tx = env.tu.requests[0][2]
    tx.respond(486, to_tag="uas1")
    count = len(env.sent)
    tx.respond(200, to_tag="uas1")
    assert len(env.sent) == count
    assert tx.state is State.COMPLETED


def test_final_response_gets_a_to_tag(env: Env) -> None:
    """Responses after 100 carry a To tag even when the TU gave none, the same each time."""
    env.layer.receive(request(), PEER)
    tx = env.tu.requests[0][2]
    tx.respond(180)
    tx.respond(486)
    tags = [s.message.to.tag for s in env.responses() if s.message.status > 100]  # type: ignore[union-attr]
    assert tags[0] is not None and tags == [tags[0], tags[0]]


def test_tu_exception_answers_500(env: Env) -> None:
    """A TU that raises on a new request does not break the layer: the request gets 500."""
    def boom(tx: ServerTransaction) -> None:
        raise RuntimeError("TU bug")

    env.tu.on_request = boom
    env.layer.receive(request("OPTIONS"), PEER)
    assert len(env.responses(500)) == 1


# -- non-INVITE server transactions ----------------------------------------------

def test_retransmitted_non_invite_answered_from_cache(env: Env) -> None:
    """A retransmitted OPTIONS gets the cached final response; the TU sees it once."""
    env.tu.on_request = lambda tx: tx.respond(200)
    env.layer.receive(request("OPTIONS"), PEER)
    env.layer.receive(request("OPTIONS"), PEER)
    assert len(env.responses(200)) == 2
    assert len(env.tu.requests) == 1


def test_non_invite_retransmission_before_answer_is_absorbed(env: Env) -> None:
    """In Trying a retransmitted request is absorbed (nothing to resend yet)."""
    env.layer.receive(request("OPTIONS"), PEER)
    env.layer.receive(request("OPTIONS"), PEER)
    assert env.sent == [] and len(env.tu.requests) == 1


def test_non_invite_server_ends_after_timer_j(env: Env) -> None:
    """A completed non-INVITE server transaction lives 64*T1, then is removed."""
    env.tu.on_request = lambda tx: tx.respond(200)
    env.layer.receive(request("OPTIONS"), PEER)
    env.advance(31.9)
    assert env.layer.transaction_count == 1
    env.advance(0.2)
    assert env.layer.transaction_count == 0


def test_unanswered_non_invite_is_dropped_after_64_t1(env: Env) -> None:
    """A non-INVITE the TU never answers is dropped after 64*T1 (no leak)."""
    env.layer.receive(request("OPTIONS"), PEER)
    env.advance(33)
    assert env.layer.transaction_count == 0 and env.clock.getDelayedCalls() == []


# -- Via received / rport -----------------------------------------------------------

def test_received_added_when_source_differs_from_via(env: Env) -> None:
    """A request from another IP than its Via host gets received= and answers go there."""
    env.layer.receive(request(), ("192.0.2.7", 6000))
    trying = env.responses(100)[0]
    assert trying.message.top_via.received == "192.0.2.7"
    assert trying.addr == ("192.0.2.7", 5060)


def test_empty_rport_filled_and_response_sent_to_source(env: Env) -> None:
    """An empty rport is filled with the source port; answers go to the source address."""
    env.layer.receive(request(rport=True), ("192.0.2.7", 6000))
    trying = env.responses(100)[0]
    assert trying.message.top_via.rport == 6000
    assert trying.message.top_via.received == "192.0.2.7"
    assert trying.addr == ("192.0.2.7", 6000)


def test_matching_source_without_rport_leaves_via_alone(env: Env) -> None:
    """Same IP as the Via host and no rport: no received, answer to the Via sent-by."""
    env.layer.receive(request(via_port=5099), ("10.0.0.2", 41000))
    trying = env.responses(100)[0]
    assert trying.message.top_via.received is None
    assert trying.addr == ("10.0.0.2", 5099)


def test_received_written_by_the_peer_is_replaced_by_the_source(env: Env) -> None:
    """A top Via arriving with received=<a name> is answered at the source IP, with
    received corrected, not at that name (RFC 3261 18.2.1, 18.2.2)."""
    env.layer.receive(request(branch="z9hG4bKabc1;received=phone.invalid"), PEER)
    trying = env.responses(100)[0]
    assert trying.message.top_via.received == PEER[0]
    assert trying.addr == PEER


def test_pre_rfc3261_branch_retransmission_matches(env: Env) -> None:
    """Without the magic cookie, Call-ID/CSeq/From tag/Via identify the transaction."""
    env.tu.on_request = lambda tx: tx.respond(200)
    env.layer.receive(request("OPTIONS", branch="oldstyle1"), PEER)
    env.layer.receive(request("OPTIONS", branch="oldstyle1"), PEER)
    assert len(env.tu.requests) == 1 and len(env.responses(200)) == 2


# -- INVITE client transactions -------------------------------------------------

def test_invite_client_timer_a_doubles(env: Env) -> None:
    """Unanswered INVITEs are resent at T1 doubling (no cap) until timer B."""
    start_client(env)
    env.advance(40)
    assert send_times(env.requests("INVITE")) == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]


def test_timer_b_calls_on_timeout_once_without_408(env: Env) -> None:
    """Timer B calls on_timeout once at 64*T1; no 408 is delivered to on_response."""
    tx, record = start_client(env)
    env.advance(31.9)
    assert record.timeouts == 0
    env.advance(10)
    assert record.timeouts == 1 and record.responses == []
    assert tx.state is State.TERMINATED and env.layer.transaction_count == 0


@pytest.mark.parametrize("failure", ["raises", "returns False"])
def test_a_failed_send_is_told_to_the_tu_once(failure: str) -> None:
    """A send that fails (raises, or the transport says False) calls on_send_error once,
    however many retransmissions fail after it; the transaction goes on to timer B."""
    clock = Clock()
    attempts: list[float] = []

    def send(data: bytes, addr: tuple[str, int]) -> bool:
        attempts.append(clock.seconds())
        if failure == "raises":
            raise OSError(22, "Invalid argument")
        return False

    layer = TransactionLayer(clock, send, FakeTU(), local_via_host=LOCAL[0],
                             local_port=LOCAL[1])
    errors: list[float] = []
    timeouts: list[float] = []
    layer.request(outgoing(), AGENT, on_response=lambda r: None,
                  on_timeout=lambda: timeouts.append(clock.seconds()),
                  on_send_error=lambda: errors.append(clock.seconds()))
    for _ in range(400):
        clock.advance(0.125)
    assert errors == [0.0]
    assert len(attempts) == 7 and timeouts == [32.0]


def test_provisional_stops_invite_retransmission(env: Env) -> None:
    """After a 1xx the INVITE is no longer retransmitted and timer B no longer applies."""
    tx, record = start_client(env)
    env.layer.receive(answer(tx, 100), AGENT)
    env.advance(40)
    assert len(env.requests("INVITE")) == 1
    assert record.timeouts == 0 and [r.status for r in record.responses] == [100]


def test_request_adds_via_with_rport_and_max_forwards(env: Env) -> None:
    """request() puts our Via (magic branch, rport) on top and adds Max-Forwards."""
    tx, _ = start_client(env)
    sent = env.requests("INVITE")[0]
    via = sent.message.top_via
    assert (via.host, via.port, via.has_rport) == (LOCAL[0], LOCAL[1], True)
    assert via.branch == tx.branch and tx.branch.startswith("z9hG4bK")
    assert sent.message.headers.get("Max-Forwards") == "70"
    assert sent.addr == AGENT


def test_non_2xx_final_acked_by_layer(env: Env) -> None:
    """A 486 is ACKed by the layer: same branch, To tag from the response, CSeq n ACK."""
    tx, record = start_client(env, routes=("<sip:10.0.0.5;lr>",))
    env.layer.receive(answer(tx, 486), AGENT)
    acks = env.requests("ACK")
    assert len(acks) == 1
    ack = acks[0].message
    assert isinstance(ack, Request)
    assert ack.top_via.branch == tx.branch
    assert ack.to.tag == "agent-tag"
    assert ack.cseq == (1, "ACK")
    assert str(ack.uri) == "sip:agent@10.0.0.3"
    assert ack.headers.get("Route") == "<sip:10.0.0.5;lr>"
    assert acks[0].addr == AGENT
    assert [r.status for r in record.responses] == [486]


def test_retransmitted_non_2xx_reacked_not_redelivered(env: Env) -> None:
    """A retransmitted 486 gets the ACK again but is not delivered twice."""
    tx, record = start_client(env)
    env.layer.receive(answer(tx, 486), AGENT)
    env.layer.receive(answer(tx, 486), AGENT)
    assert len(env.requests("ACK")) == 2
    assert len(record.responses) == 1


def test_2xx_and_its_retransmission_delivered_without_ack(env: Env) -> None:
    """Every 2xx (retransmissions too) goes to on_response; the layer does not ACK it."""
    tx, record = start_client(env)
    env.layer.receive(answer(tx, 200), AGENT)
    env.advance(2)
    env.layer.receive(answer(tx, 200), AGENT)
    assert [r.status for r in record.responses] == [200, 200]
    assert env.requests("ACK") == []
    assert tx.state is State.ACCEPTED


def test_2xx_after_accepted_state_ends_is_stray(env: Env) -> None:
    """A 2xx after the Accepted state (64*T1) ends goes to tu.stray_response."""
    tx, record = start_client(env)
    env.layer.receive(answer(tx, 200), AGENT)
    env.advance(33)
    env.layer.receive(answer(tx, 200), AGENT)
    assert len(record.responses) == 1 and len(env.tu.strays) == 1


def test_cancel_before_provisional_waits_for_1xx(env: Env) -> None:
    """cancel() before any 1xx sends nothing until the first provisional arrives."""
    tx, _ = start_client(env)
    tx.cancel()
    assert env.requests("CANCEL") == []
    env.layer.receive(answer(tx, 180), AGENT)
    assert len(env.requests("CANCEL")) == 1


def test_cancel_after_provisional_copies_invite_fields(env: Env) -> None:
    """The CANCEL reuses the INVITE's branch, URI, From, To, Call-ID, CSeq number, Route."""
    tx, _ = start_client(env, routes=("<sip:10.0.0.5;lr>",))
    env.layer.receive(answer(tx, 180), AGENT)
    tx.cancel()
    sent = env.requests("CANCEL")
    assert len(sent) == 1
    cancel = sent[0].message
    invite = tx.request
    assert isinstance(cancel, Request)
    assert cancel.top_via.branch == tx.branch and len(cancel.vias) == 1
    assert cancel.uri == invite.uri and cancel.call_id == invite.call_id
    assert cancel.headers.get("From") == invite.headers.get("From")
    assert cancel.to.tag is None and cancel.headers.get("To") == invite.headers.get("To")
    assert cancel.cseq == (1, "CANCEL")
    assert cancel.headers.get("Route") == "<sip:10.0.0.5;lr>"
    assert sent[0].addr == AGENT


def test_cancel_after_final_does_nothing(env: Env) -> None:
    """cancel() after a final response sends no CANCEL."""
    tx, _ = start_client(env)
    env.layer.receive(answer(tx, 486), AGENT)
    tx.cancel()
    assert env.requests("CANCEL") == []


def test_487_after_cancel_acked_and_delivered(env: Env) -> None:
    """The 487 following a CANCEL is ACKed by the layer and delivered to on_response."""
    tx, record = start_client(env)
    env.layer.receive(answer(tx, 180), AGENT)
    tx.cancel()
    cancel = env.requests("CANCEL")[0].message
    assert isinstance(cancel, Request)
    env.layer.receive(make_response(cancel, 200, to_tag="agent-tag"), AGENT)
    env.layer.receive(answer(tx, 487), AGENT)
    assert len(env.requests("ACK")) == 1
    assert [r.status for r in record.responses] == [180, 487]


def test_cancel_without_final_gives_up_after_64_t1(env: Env) -> None:
    """No final response 64*T1 after the CANCEL: the INVITE ends with on_timeout."""
    tx, record = start_client(env)
    env.layer.receive(answer(tx, 180), AGENT)
    tx.cancel()
    env.advance(33)
    assert record.timeouts == 1
    assert env.layer.transaction_count == 0


def test_on_response_exception_is_contained(env: Env) -> None:
    """A TU callback that raises does not escape receive() or stop the ACK."""
    def boom(response: Response) -> None:
        raise RuntimeError("TU bug")

    tx = env.layer.request(outgoing(), AGENT, on_response=boom, on_timeout=lambda: None)
    env.layer.receive(answer(tx, 486), AGENT)
    assert len(env.requests("ACK")) == 1


def test_stray_response_goes_to_tu(env: Env) -> None:
    """A response matching no client transaction is handed to stray_response."""
    env.layer.receive(make_response(request(), 200, to_tag="x"), AGENT)
    assert [r.status for r in env.tu.strays] == [200]


# -- non-INVITE client transactions ---------------------------------------------

def test_non_invite_retransmission_capped_at_t2(env: Env) -> None:
    """An unanswered BYE is resent at T1 doubling, capped at T2."""
    start_client(env, "BYE")
    env.advance(20)
    assert send_times(env.requests("BYE")) == [0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5]


def test_non_invite_proceeding_retransmits_every_t2(env: Env) -> None:
    """After a 1xx, a non-INVITE request is resent every T2."""
    tx, _ = start_client(env, "BYE")
    env.layer.receive(answer(tx, 100), AGENT)
    env.advance(10)
    assert send_times(env.requests("BYE")) == [0, 0.5, 4.5, 8.5]


def test_non_invite_timer_f_calls_on_timeout(env: Env) -> None:
    """An unanswered BYE ends at 64*T1 with one on_timeout and no response."""
    _, record = start_client(env, "BYE")
    env.advance(40)
    assert record.timeouts == 1 and record.responses == []


def test_non_invite_final_delivered_once(env: Env) -> None:
    """A non-INVITE final response is delivered once; its retransmission is absorbed."""
    tx, record = start_client(env, "BYE")
    env.layer.receive(answer(tx, 200), AGENT)
    env.layer.receive(answer(tx, 200), AGENT)
    env.advance(10)
    assert [r.status for r in record.responses] == [200]
    assert len(env.requests("BYE")) == 1


def test_send_ack_uses_a_new_branch(env: Env) -> None:
    """send_ack adds a fresh top Via and sends the ACK outside any transaction."""
    tx, _ = start_client(env)
    env.layer.receive(answer(tx, 200), AGENT)
    ack = outgoing("ACK")
    env.layer.send_ack(ack, AGENT)
    sent = env.requests("ACK")[0].message
    assert sent.top_via.branch not in (None, tx.branch)
    assert sent.top_via.branch.startswith("z9hG4bK")
    assert env.layer.transaction_count == 1


def test_request_refuses_ack(env: Env) -> None:
    """ACK cannot be sent through request(); it has no client transaction."""
    with pytest.raises(ValueError):
        env.layer.request(outgoing("ACK"), AGENT, on_response=lambda r: None,
                          on_timeout=lambda: None)


# -- leaks and configuration ---------------------------------------------------------

def test_transaction_count_returns_to_zero(env: Env) -> None:
    """After a mix of transactions and all their timers, nothing is left behind."""
    env.tu.on_request = lambda tx: tx.respond(200, to_tag="t") \
        if tx.request.method != "INVITE" else None
    env.layer.receive(request(), PEER)
    env.tu.requests[0][2].respond(200, to_tag="uas1")
    env.layer.receive(request("OPTIONS", branch="z9hG4bKopt"), PEER)
    env.layer.receive(request("INVITE", branch="z9hG4bKinv2", call_id="call-2"), PEER)
    env.tu.requests[-1][2].respond(486)
    invite, _ = start_client(env)
    env.layer.receive(answer(invite, 180), AGENT)
    invite.cancel()
    start_client(env, "BYE")
    assert env.layer.transaction_count == 6
    env.advance(80, step=0.5)
    assert env.layer.transaction_count == 0
    assert env.clock.getDelayedCalls() == []


def test_timers_validate_values() -> None:
    """Timer values must be positive and T2 at least T1."""
    with pytest.raises(ValueError):
        Timers(t1=0)
    with pytest.raises(ValueError):
        Timers(t1=2.0, t2=1.0)
    assert Timers().timeout == 32.0
