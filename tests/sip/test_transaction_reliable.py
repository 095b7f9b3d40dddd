"""The transaction layer over TCP and TLS: no retransmissions, Via and Contact per
transport, answers over the connection the request came on (RFC 3261 17, 18)."""

from __future__ import annotations

import attrs
import pytest
from twisted.internet.task import Clock

from ccswitch.sip.hop import Hop, Transport
from ccswitch.sip.message import Headers, Request, Response, SipURI, make_response, parse_message
from ccswitch.sip.transaction import TransactionLayer
from ccswitch.sip.transaction_states import State
from tests.sip.test_transaction import FakeTU, request

LOCAL_HOST = "10.0.0.1"
UDP_PORT, TCP_PORT, TLS_PORT = 5070, 5071, 5072
PEER = ("10.0.0.2", 40000)


@attrs.define
class Env:
    clock: Clock
    tu: FakeTU
    layer: TransactionLayer
    sent: list[tuple[float, Request | Response, Hop]]

    def advance(self, seconds: float) -> None:
        for _ in range(int(seconds / 0.25)):
            self.clock.advance(0.25)


@pytest.fixture
def env() -> Env:
    clock = Clock()
    sent: list[tuple[float, Request | Response, Hop]] = []
    tu = FakeTU()
    layer = TransactionLayer(
        clock, lambda data, hop: sent.append((clock.seconds(), parse_message(data), hop)),
        tu, local_via_host=LOCAL_HOST, local_port=UDP_PORT,
        stream_ports={Transport.TCP: TCP_PORT, Transport.TLS: TLS_PORT})
    return Env(clock, tu, layer, sent)


def outgoing(uri: str, method: str = "INVITE", body: bytes = b"") -> Request:
    headers = Headers()
    headers.add("From", "<sip:ccswitch@10.0.0.1>;tag=ours1")
    headers.add("To", f"<{uri}>")
    headers.add("Call-ID", "out-1@10.0.0.1")
    headers.add("CSeq", f"1 {method}")
    headers.add("Contact", f"<sip:ccswitch@{LOCAL_HOST}:{UDP_PORT}>")
    return Request(method=method, uri=SipURI.parse(uri), headers=headers, body=body)


def send(env: Env, uri: str, method: str = "INVITE", body: bytes = b"") -> list[int]:
    timeouts: list[int] = []
    env.layer.request(outgoing(uri, method, body), SipURI.parse(uri).host_port(),
                      on_response=lambda r: None, on_timeout=lambda: timeouts.append(1))
    return timeouts


def test_invite_over_tcp_is_not_retransmitted(env: Env) -> None:
    """An INVITE over TCP is sent once (no timer A) and still times out by timer B."""
    timeouts = send(env, "sip:agent@10.0.0.3:5080;transport=tcp")
    env.advance(40)
    assert len(env.sent) == 1 and timeouts == [1]


def test_options_over_tls_is_not_retransmitted(env: Env) -> None:
    """A non-INVITE over TLS is sent once (no timer E)."""
    send(env, "sips:trunk@vendor.example", "OPTIONS")
    env.advance(10)
    assert len(env.sent) == 1


def test_udp_invite_is_still_retransmitted(env: Env) -> None:
    """Over UDP timer A still resends the INVITE."""
    send(env, "sip:agent@10.0.0.3:5080")
    env.advance(2)
    assert len(env.sent) >= 2


def test_tcp_request_via_and_hop(env: Env) -> None:
    """The top Via names TCP and the TCP port; the hop is TCP to the URI address."""
    send(env, "sip:agent@10.0.0.3:5080;transport=tcp")
    _, message, hop = env.sent[0]
    via = message.top_via
    assert (via.transport, via.port, via.param("alias")) == ("TCP", TCP_PORT, None)
    assert via.params[-1] == ("alias", None)
    assert (hop.transport, hop.address) == (Transport.TCP, ("10.0.0.3", 5080))


def test_sips_hop_defaults_to_5061_and_names_the_server(env: Env) -> None:
    """A sips: URI without port goes to 5061 over TLS, checked against the URI host."""
    send(env, "sips:trunk@vendor.example", "OPTIONS")
    hop = env.sent[0][2]
    assert (hop.transport, hop.port, hop.server_name) == (Transport.TLS, 5061,
                                                          "vendor.example")


def test_contact_follows_the_transport(env: Env) -> None:
    """Our UDP Contact becomes ;transport=tcp on TCP and sips: on TLS."""
    send(env, "sip:agent@10.0.0.3:5080;transport=tcp")
    send(env, "sips:agent@10.0.0.3:5081")
    contacts = [m.headers.get("Contact") for _, m, _ in env.sent]
    assert contacts == [f"<sip:ccswitch@{LOCAL_HOST}:{TCP_PORT};transport=tcp>",
                        f"<sips:ccswitch@{LOCAL_HOST}:{TLS_PORT}>"]


def test_large_request_goes_over_tcp(env: Env) -> None:
    """A request above 1100 bytes to a URI that does not pin UDP leaves over TCP."""
    send(env, "sip:agent@10.0.0.3:5080", body=b"v=0\r\n" + b"a=x\r\n" * 250)
    _, message, hop = env.sent[0]
    assert hop.transport is Transport.TCP and message.top_via.transport == "TCP"


def test_unconfigured_transport_times_out_at_once(env: Env) -> None:
    """A URI naming a transport this node lacks sends nothing and fails at once."""
    layer = TransactionLayer(env.clock, lambda data, hop: None, env.tu,
                             local_via_host=LOCAL_HOST, local_port=UDP_PORT)
    timeouts: list[int] = []
    layer.request(outgoing("sips:a@10.0.0.3"), ("10.0.0.3", 5061),
                  on_response=lambda r: None, on_timeout=lambda: timeouts.append(1))
    env.clock.advance(0)
    assert timeouts == [1] and layer.transaction_count == 0


def test_response_goes_back_on_the_request_connection(env: Env) -> None:
    """A response to a TCP request carries the transport and connection it came on."""
    env.layer.receive(request("OPTIONS"), PEER, transport=Transport.TCP, flow=7)
    env.tu.requests[0][2].respond(200)
    hop = env.sent[-1][2]
    assert (hop.transport, hop.flow, hop.host) == (Transport.TCP, 7, PEER[0])


def test_tcp_non_2xx_final_not_retransmitted(env: Env) -> None:
    """Over TCP a 486 to an INVITE is sent once (no timer G)."""
    env.layer.receive(request(), PEER, transport=Transport.TCP, flow=1)
    env.tu.requests[0][2].respond(486)
    env.advance(10)
    assert [m.status for _, m, _ in env.sent if isinstance(m, Response)] == [100, 486]


def test_tcp_server_transaction_ends_at_ack(env: Env) -> None:
    """Over TCP timer I is zero: the INVITE transaction ends as soon as the ACK comes."""
    env.layer.receive(request(), PEER, transport=Transport.TCP, flow=1)
    tx = env.tu.requests[0][2]
    tx.respond(486)
    final = env.sent[-1][1]
    assert isinstance(final, Response)
    ack = request("ACK", to_tag=final.to.tag)
    env.layer.receive(ack, PEER, transport=Transport.TCP, flow=1)
    env.clock.advance(0)
    assert tx.state is State.TERMINATED and env.layer.transaction_count == 0


def test_tcp_client_non_invite_ends_at_final(env: Env) -> None:
    """Over TCP timer K is zero: an OPTIONS transaction ends with its final response."""
    env.layer.request(outgoing("sip:a@10.0.0.3;transport=tcp", "OPTIONS"),
                      ("10.0.0.3", 5060), on_response=lambda r: None,
                      on_timeout=lambda: None)
    sent = env.sent[0][1]
    assert isinstance(sent, Request)
    env.layer.receive(make_response(sent, 200, to_tag="x"), ("10.0.0.3", 5060),
                      transport=Transport.TCP, flow=2)
    env.clock.advance(0)
    assert env.layer.transaction_count == 0


def test_transport_failure_ends_waiting_transaction_at_once(env: Env) -> None:
    """A failed connection ends a TLS INVITE that got no response yet, as a timeout."""
    timeouts = send(env, "sips:agent@10.0.0.3:5081")
    env.layer.transport_failed(Transport.TLS, ("10.0.0.3", 5081))
    assert timeouts == [1] and env.layer.transaction_count == 0


def test_transport_failure_spares_answered_transaction(env: Env) -> None:
    """A transaction that already got a provisional response is not ended by it."""
    timeouts = send(env, "sip:agent@10.0.0.3:5080;transport=tcp")
    sent = env.sent[0][1]
    assert isinstance(sent, Request)
    env.layer.receive(make_response(sent, 180, to_tag="t"), ("10.0.0.3", 5080),
                      transport=Transport.TCP, flow=3)
    env.layer.transport_failed(Transport.TCP, ("10.0.0.3", 5080))
    assert timeouts == [] and env.layer.transaction_count == 1


def test_transport_failure_elsewhere_changes_nothing(env: Env) -> None:
    """A failure to another address leaves the transaction alone."""
    timeouts = send(env, "sip:agent@10.0.0.3:5080;transport=tcp")
    env.layer.transport_failed(Transport.TCP, ("10.0.0.4", 5080))
    assert timeouts == []


def test_large_request_falls_back_to_udp_without_tcp_peer(env: Env) -> None:
    """A request sent over TCP for its size only goes over UDP (Via and Contact too) when
    the TCP connection cannot be made, and is then retransmitted as UDP."""
    timeouts = send(env, "sip:agent@10.0.0.3:5080", body=b"a=x\r\n" * 250)
    env.layer.transport_failed(Transport.TCP, ("10.0.0.3", 5080))
    _, message, hop = env.sent[1]
    assert (hop.transport, hop.address) == (Transport.UDP, ("10.0.0.3", 5080))
    assert message.top_via.transport == "UDP" and message.top_via.port == UDP_PORT
    assert message.headers.get("Contact") == f"<sip:ccswitch@{LOCAL_HOST}:{UDP_PORT}>"
    env.advance(1)
    assert timeouts == [] and len(env.sent) >= 3


def test_pinned_tcp_does_not_fall_back(env: Env) -> None:
    """A ;transport=tcp request whose connection fails ends; it is not resent over UDP."""
    timeouts = send(env, "sip:agent@10.0.0.3:5080;transport=tcp", body=b"a=x\r\n" * 250)
    env.layer.transport_failed(Transport.TCP, ("10.0.0.3", 5080))
    assert timeouts == [1] and len(env.sent) == 1
