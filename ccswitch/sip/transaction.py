"""RFC 3261 section 17 transactions over UDP, TCP and TLS, sans-I/O (RFC 6026 and
RFC 3581 included).

The layer sits between the wire and the transaction user (the call runtime). It takes
parsed messages plus their source address and transport, hands bytes and a
:class:`~ccswitch.sip.hop.Hop` to an injected ``send`` callable, and runs every timer through an injected clock
(anything with ``seconds()`` and ``callLater()``: the reactor in production,
``twisted.internet.task.Clock`` in tests). It imports nothing from
``twisted.internet``.

Each transaction kind is a small state machine whose legal transitions are the
``_TRANSITIONS`` table below. An event a machine does not accept leaves its state
unchanged: events from the network are dropped, a response the TU may not send
(a second final response, say) is logged and ignored. Nothing raises into the
clock's caller.

Response routing (RFC 3261 18.2.2, RFC 3581): a server transaction stamps ``received=<source ip>`` on the top Via when the source IP
differs from the sent-by host or from a ``received`` the request already carries
(and always when ``rport`` is present), fills an empty ``rport`` with the source
port, then answers to the packet's source address when ``rport`` is present, else
to the source IP (the ``received`` address) and the sent-by port, so no answer
needs DNS. ``maddr`` is not honoured. Over TCP and TLS the answer goes back over the
connection the request came on (the hop's ``flow``), and to that address when the
connection is gone.

Requests pick their transport from the next-hop URI and their size
(:func:`~ccswitch.sip.hop.select_transport`); the top Via names it. When the transports
report that a connection could not be made (:meth:`TransactionLayer.transport_failed`),
a request that went to TCP for its size only is sent over UDP instead, any other one
ends at once as a timeout. Reliable transports
(TCP, TLS) get no retransmission timers (A, E, G) and zero waits for timers D, I, J, K
(RFC 3261 17.1.1.2, 17.1.2.2, 17.2.1, 17.2.2); the UAS still retransmits a 2xx until
the ACK (13.3.1.4: the ACK is end to end). Our own Contact (the UDP one the TU writes)
is rewritten to the transport a message leaves on (``;transport=tcp``, ``sips:``), so
the peer's requests in the dialog come back the same way.
"""

from __future__ import annotations

import enum
from typing import Any, Callable, Iterable, Mapping, Protocol

import attrs
from twisted.logger import Logger

from ccswitch.clock import Clock, DelayedCall
from ccswitch.errors import SipParseError
from ccswitch.sip.hop import Hop, Transport, default_port, next_hop_uri, select_transport
from ccswitch.sip.message import (
    BRANCH_MAGIC, Headers, NameAddr, Request, Response, SipURI, Via, make_response,
    new_branch, new_tag,
)

__all__ = [
    "Timers", "State", "TransactionUser", "TransactionLayer", "ServerTransaction",
    "ClientTransaction", "TIMER_D",
]

log = Logger()

Address = tuple[str, int]
# Key of a server transaction: RFC 3261 17.2.3 (branch, sent-by host, port, method) or
# the RFC 2543 fallback (call-id, cseq, from tag, sent-by, method).
_ServerKey = tuple[object, ...]
_ClientKey = tuple[str, str]

TIMER_D = 32.0
"""Timer D for unreliable transports: how long a completed INVITE client transaction
stays to re-ACK retransmitted non-2xx finals (RFC 3261 17.1.1.2, at least 32 s)."""


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


@attrs.frozen(kw_only=True)
class Timers:
    """RFC 3261 timer base values in seconds; B, F, H, J, L, M are 64*T1."""

    t1: float = attrs.field(default=0.5, validator=_positive)
    t2: float = attrs.field(default=4.0, validator=_positive)
    t4: float = attrs.field(default=5.0, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.t2 < self.t1:
            raise ValueError(f"t2 ({self.t2}) must be >= t1 ({self.t1})")

    @property
    def timeout(self) -> float:
        """64*T1: timers B, F, H, J, L and M."""
        return 64 * self.t1


class TransactionUser(Protocol):
    """The layer's caller: the UA core (here ``ccswitch.calls``' call controller)."""

    def request_received(self, request: Request, source: Address,
                         tx: ServerTransaction) -> None:
        """A new request (not ACK, not CANCEL); answer it with ``tx.respond``."""

    def ack_received(self, request: Request, source: Address) -> None:
        """An ACK for a 2xx (any ACK not absorbed by a non-2xx INVITE server transaction)."""

    def cancel_received(self, invite_tx: ServerTransaction) -> None:
        """A CANCEL matched ``invite_tx`` (already answered 200); answer the INVITE 487."""

    def stray_response(self, response: Response, source: Address) -> None:
        """A response that matches no client transaction (e.g. a late 2xx retransmission)."""


class State(enum.Enum):
    """Transaction states of RFC 3261 17 plus Accepted from RFC 6026."""

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    ACCEPTED = "Accepted"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    TERMINATED = "Terminated"


# -- transitions as data -------------------------------------------------------

_IST, _NIST, _ICT, _NICT = "INVITE server", "non-INVITE server", "INVITE client", \
    "non-INVITE client"

_S = State
_TRANSITIONS: dict[tuple[str, State, str], State] = {
    # INVITE server (RFC 3261 17.2.1 with RFC 6026 Accepted).
    (_IST, _S.PROCEEDING, "send 1xx"): _S.PROCEEDING,
    (_IST, _S.PROCEEDING, "send 2xx"): _S.ACCEPTED,
    (_IST, _S.PROCEEDING, "send 300-699"): _S.COMPLETED,
    (_IST, _S.ACCEPTED, "ack"): _S.ACCEPTED,
    (_IST, _S.ACCEPTED, "timer L"): _S.TERMINATED,
    (_IST, _S.COMPLETED, "ack"): _S.CONFIRMED,
    (_IST, _S.COMPLETED, "timer H"): _S.TERMINATED,
    (_IST, _S.CONFIRMED, "timer I"): _S.TERMINATED,
    # non-INVITE server (17.2.2); "no answer" ends a transaction the TU never answered.
    (_NIST, _S.TRYING, "send 1xx"): _S.PROCEEDING,
    (_NIST, _S.PROCEEDING, "send 1xx"): _S.PROCEEDING,
    (_NIST, _S.TRYING, "send 2xx"): _S.COMPLETED,
    (_NIST, _S.PROCEEDING, "send 2xx"): _S.COMPLETED,
    (_NIST, _S.TRYING, "send 300-699"): _S.COMPLETED,
    (_NIST, _S.PROCEEDING, "send 300-699"): _S.COMPLETED,
    (_NIST, _S.TRYING, "no answer"): _S.TERMINATED,
    (_NIST, _S.PROCEEDING, "no answer"): _S.TERMINATED,
    (_NIST, _S.COMPLETED, "timer J"): _S.TERMINATED,
    # INVITE client (17.1.1 with RFC 6026 Accepted).
    (_ICT, _S.CALLING, "1xx"): _S.PROCEEDING,
    (_ICT, _S.PROCEEDING, "1xx"): _S.PROCEEDING,
    (_ICT, _S.CALLING, "2xx"): _S.ACCEPTED,
    (_ICT, _S.PROCEEDING, "2xx"): _S.ACCEPTED,
    (_ICT, _S.ACCEPTED, "2xx"): _S.ACCEPTED,
    (_ICT, _S.CALLING, "300-699"): _S.COMPLETED,
    (_ICT, _S.PROCEEDING, "300-699"): _S.COMPLETED,
    (_ICT, _S.COMPLETED, "300-699"): _S.COMPLETED,
    (_ICT, _S.CALLING, "timer B"): _S.TERMINATED,
    (_ICT, _S.CALLING, "transport error"): _S.TERMINATED,
    (_ICT, _S.PROCEEDING, "cancel timeout"): _S.TERMINATED,
    (_ICT, _S.COMPLETED, "timer D"): _S.TERMINATED,
    (_ICT, _S.ACCEPTED, "timer M"): _S.TERMINATED,
    # non-INVITE client (17.1.2).
    (_NICT, _S.TRYING, "1xx"): _S.PROCEEDING,
    (_NICT, _S.PROCEEDING, "1xx"): _S.PROCEEDING,
    (_NICT, _S.TRYING, "2xx"): _S.COMPLETED,
    (_NICT, _S.PROCEEDING, "2xx"): _S.COMPLETED,
    (_NICT, _S.TRYING, "300-699"): _S.COMPLETED,
    (_NICT, _S.PROCEEDING, "300-699"): _S.COMPLETED,
    (_NICT, _S.COMPLETED, "300-699"): _S.COMPLETED,
    (_NICT, _S.COMPLETED, "2xx"): _S.COMPLETED,
    (_NICT, _S.TRYING, "timer F"): _S.TERMINATED,
    (_NICT, _S.TRYING, "transport error"): _S.TERMINATED,
    (_NICT, _S.PROCEEDING, "timer F"): _S.TERMINATED,
    (_NICT, _S.COMPLETED, "timer K"): _S.TERMINATED,
}


def _status_event(status: int) -> str:
    if status < 200:
        return "1xx"
    if status < 300:
        return "2xx"
    return "300-699"


class _Transaction:
    """State, timers and the transition check shared by both transaction kinds."""

    _kind: str

    def __init__(self, layer: TransactionLayer, initial: State) -> None:
        self._layer = layer
        self.state = initial
        self._timers: dict[str, DelayedCall] = {}

    def _next(self, event: str) -> State | None:
        """The state ``event`` leads to, or None when this machine does not accept it."""
        return _TRANSITIONS.get((self._kind, self.state, event))

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    def _start_timer(self, name: str, delay: float, fire: Callable[[], None]) -> None:
        old = self._timers.pop(name, None)
        if old is not None and old.active():
            old.cancel()
        self._timers[name] = self._layer._clock.callLater(delay, self._timer_fired, name, fire)

    def _timer_fired(self, name: str, fire: Callable[[], None]) -> None:
        self._timers.pop(name, None)
        if self.state is State.TERMINATED:
            return
        try:
            fire()
        except Exception:
            log.failure("{kind} transaction: timer {timer} failed", kind=self._kind,
                        timer=name)

    def _stop_timer(self, name: str) -> None:
        call = self._timers.pop(name, None)
        if call is not None and call.active():
            call.cancel()

    def _terminate(self) -> None:
        self.state = State.TERMINATED
        for call in self._timers.values():
            if call.active():
                call.cancel()
        self._timers.clear()


# -- server transactions -------------------------------------------------------

class ServerTransaction(_Transaction):
    """One received request and the responses the TU sends to it."""

    def __init__(self, layer: TransactionLayer, request: Request, source: Address,
                 key: _ServerKey, destination: Hop) -> None:
        invite = request.method == "INVITE"
        super().__init__(layer, State.PROCEEDING if invite else State.TRYING)
        self._kind = _IST if invite else _NIST
        self.request = request
        self.source = source
        self.destination = destination
        """Where responses go (RFC 3261 18.2.2 / RFC 3581, see the module docstring)."""
        self.final_sent = False
        self.acked = False
        self._key = key
        self._invite = invite
        self._last: bytes | None = None
        self._to_tag: str | None = None
        self._interval = 0.0
        self._on_no_ack: Callable[[], None] | None = None

    @property
    def is_invite(self) -> bool:
        return self._invite

    def respond(self, status_or_response: int | Response, reason: str | None = None, *,
                to_tag: str | None = None, body: bytes = b"",
                content_type: str | None = None, headers: Iterable[tuple[str, str]] = (),
                on_no_ack: Callable[[], None] | None = None) -> None:
        """Send a response. Final responses other than 100 get a To tag when the request
        had none (``to_tag``, else the tag this transaction already used, else a new one).

        INVITE 2xx: retransmitted (T1 doubling up to T2) until the ACK arrives; without
        an ACK after 64*T1 ``on_no_ack`` is called. INVITE 300-699: retransmitted by
        timer G until the ACK; ``on_no_ack`` on timer H. A response the transaction
        cannot send any more (a second final, say) is logged and ignored.
        """
        try:
            response = self._build(status_or_response, reason, to_tag, body, content_type,
                                   headers)
        except (ValueError, SipParseError) as e:
            log.error("{method} {call_id}: cannot build response: {error}",
                      method=self.request.method, call_id=self._call_id(), error=str(e))
            return
        status = response.status
        event = "send " + ("1xx" if status < 200 else "2xx" if status < 300 else "300-699")
        new = self._next(event)
        if new is None:
            log.error("{method} {call_id}: cannot send {status} in state {state}; ignored",
                      method=self.request.method, call_id=self._call_id(), status=status,
                      state=self.state.value)
            return
        self.state = new
        self._layer._localize_contact(response.headers, self.destination.transport)
        self._last = response.to_bytes()
        self._layer._send(self._last, self.destination)
        if status < 200:
            return
        self.final_sent = True
        self._stop_timer("no answer")
        timers = self._layer.timers
        if not self._invite:
            reliable = self.destination.transport.reliable
            self._start_timer("J", 0 if reliable else timers.timeout, self._timer_j)
            return
        self._on_no_ack = on_no_ack
        self._interval = timers.t1
        if status < 300 or not self.destination.transport.reliable:
            self._start_timer("retransmit", timers.t1, self._retransmit_final)
        if status < 300:
            self._layer._accepted[self._ack_key()] = self
            self._start_timer("L", timers.timeout, self._timer_l)
        else:
            self._start_timer("H", timers.timeout, self._timer_h)

    # -- internals --

    def _build(self, status_or_response: int | Response, reason: str | None,
               to_tag: str | None, body: bytes, content_type: str | None,
               headers: Iterable[tuple[str, str]]) -> Response:
        request = self.request
        if isinstance(status_or_response, Response):
            response = status_or_response
            if self._to_tag is None and request.to.tag is None:
                self._to_tag = response.to.tag
            return response
        status = status_or_response
        untagged = request.to.tag is None
        if to_tag is None and status > 100 and untagged:
            to_tag = self._to_tag or new_tag()
        if untagged and to_tag is not None and self._to_tag is None and status > 100:
            self._to_tag = to_tag
        return make_response(request, status, reason, to_tag=to_tag, body=body,
                             content_type=content_type, headers=headers)

    def _call_id(self) -> str:
        return self.request.headers.get("Call-ID") or "?"

    def _ack_key(self) -> tuple[str, int]:
        return (self.request.call_id, self.request.cseq[0])

    def _retransmitted(self) -> None:
        """The request came again: answer with the last response (RFC 3261 17.2.1/17.2.2).

        Absorbed in Trying (nothing sent yet), Accepted (RFC 6026: the 2xx has its own
        retransmission timer) and Confirmed.
        """
        if self._last is not None and self.state in (State.PROCEEDING, State.COMPLETED):
            self._layer._send(self._last, self.destination)

    def _ack(self, request: Request, source: Address) -> None:
        """An ACK for this INVITE: absorb it (non-2xx) or stop the 2xx and tell the TU."""
        new = self._next("ack")
        if new is None:
            return
        if self.state is State.ACCEPTED:
            self.acked = True
            self._stop_timer("retransmit")
            self._layer._tu_ack(request, source)
            return
        self.state = new
        self.acked = True
        self._stop_timer("retransmit")
        self._stop_timer("H")
        reliable = self.destination.transport.reliable
        self._start_timer("I", 0 if reliable else self._layer.timers.t4, self._timer_i)

    def _retransmit_final(self) -> None:
        if self._last is None or self.acked:
            return
        self._layer._send(self._last, self.destination)
        self._interval = min(self._interval * 2, self._layer.timers.t2)
        self._start_timer("retransmit", self._interval, self._retransmit_final)

    def _timer_l(self) -> None:
        acked = self.acked
        self._end("timer L")
        if not acked:
            self._no_ack()

    def _timer_h(self) -> None:
        self._end("timer H")
        self._no_ack()

    def _timer_i(self) -> None:
        self._end("timer I")

    def _timer_j(self) -> None:
        self._end("timer J")

    def _no_answer(self) -> None:
        log.warn("{method} {call_id}: no final response from the TU in time; dropped",
                 method=self.request.method, call_id=self._call_id())
        self._end("no answer")

    def _no_ack(self) -> None:
        log.info("{method} {call_id}: no ACK for the final response",
                 method=self.request.method, call_id=self._call_id())
        callback = self._on_no_ack
        self._on_no_ack = None
        if callback is not None:
            self._layer._call_tu(callback)

    def _end(self, event: str) -> None:
        if self._next(event) is None:
            return
        self._terminate()
        self._layer._forget_server(self)


# -- client transactions -------------------------------------------------------

class ClientTransaction(_Transaction):
    """One request we sent and the responses to it."""

    def __init__(self, layer: TransactionLayer, request: Request, destination: Hop,
                 branch: str, via: str, on_response: Callable[[Response], None],
                 on_timeout: Callable[[], None],
                 on_send_error: Callable[[], None] | None = None) -> None:
        invite = request.method == "INVITE"
        super().__init__(layer, State.CALLING if invite else State.TRYING)
        self._kind = _ICT if invite else _NICT
        self.request = request
        """The request as sent (with our Via and Max-Forwards)."""
        self.destination = destination
        self.branch = branch
        self._via = via
        self._invite = invite
        self._on_response = on_response
        self._on_timeout = on_timeout
        self._on_send_error = on_send_error
        self._data = request.to_bytes()
        self._interval = layer.timers.t1
        self._ack_data: bytes | None = None
        self._cancel_wanted = False
        self._cancel_sent = False
        self._fallback: Callable[[], tuple[Request, Hop, str]] | None = None
        """Set when TCP was chosen for the request's size only: how to send it over UDP
        if the TCP connection cannot be made (RFC 3261 18.1.1)."""

    @property
    def key(self) -> _ClientKey:
        return (self.branch, self.request.method)

    def cancel(self) -> None:
        """CANCEL this INVITE (RFC 3261 9.1): now if a provisional response came, else as
        soon as one comes; nothing once a final response came. Idempotent."""
        if not self._invite:
            log.warn("cannot CANCEL a {method} transaction", method=self.request.method)
            return
        if self._cancel_wanted:
            return
        self._cancel_wanted = True
        if self.state is State.PROCEEDING:
            self._send_cancel()

    # -- internals --

    def _send_request(self) -> None:
        """Send (or resend) the request; the first send that fails is told to the TU once
        (retransmissions go on: the timeout still ends the transaction)."""
        if self._layer._send(self._data, self.destination):
            return
        callback, self._on_send_error = self._on_send_error, None
        if callback is not None:
            self._layer._call_tu(callback)

    def _start(self) -> None:
        timers = self._layer.timers
        self._send_request()
        retransmit = not self.destination.transport.reliable
        if self._invite:
            if retransmit:
                self._start_timer("A", timers.t1, self._retransmit)
            self._start_timer("B", timers.timeout, self._timeout)
        else:
            if retransmit:
                self._start_timer("E", timers.t1, self._retransmit)
            self._start_timer("F", timers.timeout, self._timeout)

    def _retransmit(self) -> None:
        timers = self._layer.timers
        self._send_request()
        if self._invite:
            if self.state is not State.CALLING:
                return
            self._interval *= 2
            self._start_timer("A", self._interval, self._retransmit)
            return
        if self.state is State.PROCEEDING:
            self._interval = timers.t2
        else:
            self._interval = min(self._interval * 2, timers.t2)
        self._start_timer("E", self._interval, self._retransmit)

    def _timeout(self) -> None:
        event = "timer B" if self._invite else "timer F"
        if self._next(event) is None:
            return
        log.info("{method} {call_id} to {destination}: no response, timed out",
                 method=self.request.method, call_id=self.request.call_id,
                 destination=self.destination)
        self._end()
        self._layer._call_tu(self._on_timeout)

    def _transport_error(self) -> None:
        if self._next("transport error") is None:
            return
        fallback, self._fallback = self._fallback, None
        if fallback is not None:
            self._retry(fallback)
            return
        log.info("{method} {call_id} to {destination}: {transport} connection failed",
                 method=self.request.method, call_id=self.request.call_id,
                 destination=self.destination.address,
                 transport=self.destination.transport.value)
        self._end()
        self._layer._call_tu(self._on_timeout)

    def _retry(self, fallback: Callable[[], tuple[Request, Hop, str]]) -> None:
        """Send again over UDP, with a UDP Via and Contact; timer B or F keeps running."""
        old = self.destination
        self.request, self.destination, self._via = fallback()
        self._data = self.request.to_bytes()
        log.info("{method} {call_id}: no TCP connection to {destination}; sent over UDP",
                 method=self.request.method, call_id=self.request.call_id,
                 destination=old.address)
        self._layer._send(self._data, self.destination)
        self._interval = self._layer.timers.t1
        self._start_timer("A" if self._invite else "E", self._interval, self._retransmit)

    def _cancel_timeout(self) -> None:
        if self._next("cancel timeout") is None:
            return
        log.info("INVITE {call_id}: no final response after CANCEL; giving up",
                 call_id=self.request.call_id)
        self._end()
        self._layer._call_tu(self._on_timeout)

    def _receive(self, response: Response) -> None:
        status = response.status
        event = _status_event(status)
        new = self._next(event)
        if new is None:
            return  # e.g. a late 1xx after the final one: absorbed
        old = self.state
        self.state = new
        timers = self._layer.timers
        if self._invite:
            if old is State.COMPLETED:
                # A retransmitted non-2xx final: ACK it again, the TU has seen it.
                if self._ack_data is not None:
                    self._layer._send(self._ack_data, self.destination)
                return
            if status < 200:
                self._stop_timer("A")
                self._stop_timer("B")
                self._layer._call_tu(self._on_response, response)
                if self._cancel_wanted and not self._cancel_sent \
                        and self.state is State.PROCEEDING:
                    self._send_cancel()
                return
            self._stop_timer("A")
            self._stop_timer("B")
            self._stop_timer("cancel")
            if status < 300:
                if old is not State.ACCEPTED:
                    self._start_timer("M", timers.timeout, lambda: self._end_by("timer M"))
            else:
                self._ack_data = self._build_ack(response).to_bytes()
                self._layer._send(self._ack_data, self.destination)
                wait = 0 if self.destination.transport.reliable else TIMER_D
                self._start_timer("D", wait, lambda: self._end_by("timer D"))
            self._layer._call_tu(self._on_response, response)
            return
        # non-INVITE
        if old is State.COMPLETED:
            return  # retransmitted final: absorbed
        if status >= 200:
            self._stop_timer("E")
            self._stop_timer("F")
            wait = 0 if self.destination.transport.reliable else timers.t4
            self._start_timer("K", wait, lambda: self._end_by("timer K"))
        self._layer._call_tu(self._on_response, response)

    def _send_cancel(self) -> None:
        self._cancel_sent = True
        invite = self.request
        src = invite.headers
        headers = Headers()
        headers.add("Via", self._via)
        for route in src.values("Route"):
            headers.add("Route", route)
        headers.add("Max-Forwards", "70")
        for name in ("From", "To", "Call-ID"):
            value = src.get(name)
            if value is not None:
                headers.add(name, value)
        headers.add("CSeq", f"{invite.cseq[0]} CANCEL")
        headers.add("User-Agent", self._layer.user_agent)
        cancel = Request(method="CANCEL", uri=invite.uri, headers=headers)
        call_id = invite.call_id
        self._layer._start_client(
            cancel, self.destination, self.branch, self._via, on_response=_ignore_response,
            on_timeout=lambda: log.info("CANCEL for {call_id} timed out", call_id=call_id))
        self._start_timer("cancel", self._layer.timers.timeout, self._cancel_timeout)

    def _build_ack(self, response: Response) -> Request:
        """The ACK for a non-2xx final (RFC 3261 17.1.1.3): same branch, response's To."""
        invite = self.request
        src = invite.headers
        headers = Headers()
        headers.add("Via", self._via)
        for route in src.values("Route"):
            headers.add("Route", route)
        headers.add("Max-Forwards", "70")
        for name in ("From", "Call-ID"):
            value = src.get(name)
            if value is not None:
                headers.add(name, value)
        to = response.headers.get("To")
        if to is not None:
            headers.add("To", to)
        headers.add("CSeq", f"{invite.cseq[0]} ACK")
        headers.add("User-Agent", self._layer.user_agent)
        return Request(method="ACK", uri=invite.uri, headers=headers)

    def _end_by(self, event: str) -> None:
        if self._next(event) is not None:
            self._end()

    def _end(self) -> None:
        self._terminate()
        self._layer._forget_client(self)


def _ignore_response(response: Response) -> None:
    """The response to our CANCEL needs no action: the INVITE's 487 ends the leg."""


# -- the layer -----------------------------------------------------------------

class TransactionLayer:
    """Matches messages to transactions, runs their timers, talks to the TU."""

    def __init__(self, clock: Clock, send: Callable[[bytes, Hop], bool | None],
                 tu: TransactionUser, *, timers: Timers = Timers(), local_via_host: str,
                 local_port: int, stream_ports: Mapping[Transport, int] | None = None,
                 user_agent: str = "ccswitch") -> None:
        """``local_port`` is the UDP port; ``stream_ports`` the TCP and TLS listening
        ports, when there are any (requests may then use those transports)."""
        self._clock = clock
        self._send_fn = send
        self._tu = tu
        self.timers = timers
        self.user_agent = user_agent
        host = local_via_host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        self._host = host
        self._ports: dict[Transport, int] = {Transport.UDP: local_port,
                                             **(stream_ports or {})}
        self._available = frozenset(self._ports)
        self._server: dict[_ServerKey, ServerTransaction] = {}
        self._client: dict[_ClientKey, ClientTransaction] = {}
        self._accepted: dict[tuple[str, int], ServerTransaction] = {}

    @property
    def transaction_count(self) -> int:
        """Live (not yet terminated) server and client transactions."""
        return len(self._server) + len(self._client)

    # -- from the wire --

    def receive(self, message: Request | Response, source: Address, *,
                transport: Transport = Transport.UDP, flow: int | None = None) -> None:
        """Handle one parsed message that arrived from ``source`` over ``transport``
        (on connection ``flow`` for TCP and TLS)."""
        if isinstance(message, Response):
            self._receive_response(message, source)
        else:
            self._receive_request(message, source, transport, flow)

    def _receive_response(self, response: Response, source: Address) -> None:
        branch = response.top_via.branch
        tx = None
        if branch is not None:
            tx = self._client.get((branch, response.cseq[1]))
        if tx is None:
            self._call_tu(self._tu.stray_response, response, source)
            return
        tx._receive(response)

    def _receive_request(self, request: Request, source: Address, transport: Transport,
                         flow: int | None) -> None:
        method = request.method
        top = request.top_via
        if method == "ACK":
            self._receive_ack(request, source, top)
            return
        key = _server_key(request, top, method)
        tx = self._server.get(key)
        if tx is not None:
            tx._retransmitted()
            return
        ip, port = self._stamp_via(request, top, source)
        destination = Hop(host=ip, port=port, transport=transport, flow=flow)
        tx = ServerTransaction(self, request, source, key, destination)
        self._server[key] = tx
        if method == "INVITE":
            tx.respond(100)
        else:
            tx._start_timer("no answer", self.timers.timeout, tx._no_answer)
        if method == "CANCEL":
            self._receive_cancel(tx, request, top)
            return
        if not self._call_tu(self._tu.request_received, request, source, tx) \
                and not tx.final_sent:
            tx.respond(500, headers=(("Server", self.user_agent),))

    def _receive_ack(self, request: Request, source: Address, top: Via) -> None:
        invite_tx = self._server.get(_server_key(request, top, "INVITE"))
        if invite_tx is not None and invite_tx.state in (State.COMPLETED, State.CONFIRMED,
                                                        State.ACCEPTED):
            invite_tx._ack(request, source)
            return
        if invite_tx is not None and invite_tx.state is State.PROCEEDING:
            return  # an ACK before any final response: nothing to acknowledge
        try:
            accepted = self._accepted.get((request.call_id, request.cseq[0]))
        except SipParseError:
            accepted = None
        if accepted is not None:
            accepted._ack(request, source)
            return
        self._tu_ack(request, source)

    def _receive_cancel(self, cancel_tx: ServerTransaction, request: Request,
                        top: Via) -> None:
        invite_tx = self._server.get(_server_key(request, top, "INVITE"))
        server = (("Server", self.user_agent),)
        if invite_tx is None or not invite_tx._invite:
            cancel_tx.respond(481, to_tag=new_tag(), headers=server)
            return
        tag = invite_tx._to_tag
        if tag is None and invite_tx.request.to.tag is None:
            tag = invite_tx._to_tag = new_tag()
        cancel_tx.respond(200, to_tag=tag, headers=server)
        if invite_tx.final_sent:
            return
        self._call_tu(self._tu.cancel_received, invite_tx)
        if not invite_tx.final_sent:
            invite_tx.respond(487, headers=server)

    def _stamp_via(self, request: Request, top: Via, source: Address) -> Address:
        """Add received/rport to the top Via (RFC 3261 18.2.1, RFC 3581); where to answer."""
        ip, port = source
        host = top.host
        if host.startswith("["):
            host = host[1:-1]
        rport = top.has_rport
        # A received parameter the peer wrote itself (not its source IP) is replaced: it
        # would send the answer somewhere else, or to a name needing DNS.
        if rport or host != ip or top.received not in (None, ip):
            new = top.with_param("received", ip)
            if rport and top.rport is None:
                new = new.with_param("rport", str(port))
            vias = request.vias
            headers = request.headers
            if len(vias) == 1:
                headers.set("Via", str(new))
            else:
                vias[0] = new
                headers.remove("Via")
                for via in reversed(vias):
                    headers.add("Via", str(via), first=True)
            top = new
        if rport:
            return source
        return (ip, top.sent_by()[1])  # received (stamped above) or the sent-by host: ip

    # -- from the TU --

    def request(self, request: Request, destination: Address, *,
                on_response: Callable[[Response], None],
                on_timeout: Callable[[], None],
                on_send_error: Callable[[], None] | None = None) -> ClientTransaction:
        """Send ``request`` (not ACK) in a new client transaction.

        Adds our top Via (new branch, ``rport``), Max-Forwards and User-Agent when
        missing. ``on_response`` gets every provisional and final response (INVITE:
        every 2xx, retransmissions included, for the TU to ACK; non-2xx finals are
        ACKed here). ``on_timeout`` is called once when the transaction ends without
        a final response (timer B/F, or 64*T1 after a CANCEL); no 408 is delivered.
        ``on_send_error`` is called once if sending the request (or a retransmission)
        fails: no route, bad address, socket error.
        """
        if request.method == "ACK":
            raise ValueError("ACK is not sent in a transaction; use send_ack")
        headers = request.headers.copy()
        branch = new_branch()
        if "Max-Forwards" not in headers:
            headers.add("Max-Forwards", "70")
        if "User-Agent" not in headers:
            headers.add("User-Agent", self.user_agent)
        base = headers.copy()  # without our Via: for a retry over UDP
        try:
            hop, via = self._route(request, headers, destination, branch)
        except ValueError as e:
            log.error("{method} {call_id} to {uri}: cannot send: {reason}",
                      method=request.method, call_id=request.headers.get("Call-ID"),
                      uri=str(request.uri), reason=str(e))
            tx = ClientTransaction(self, request, Hop(host=destination[0],
                                                      port=destination[1]),
                                   branch, "", on_response, on_timeout)
            self._client[tx.key] = tx
            tx._start_timer("B" if tx._invite else "F", 0, tx._timeout)
            return tx
        sent = Request(method=request.method, uri=request.uri, headers=headers,
                       body=request.body)
        tx = self._start_client(sent, hop, branch, via, on_response=on_response,
                                on_timeout=on_timeout, on_send_error=on_send_error)
        if hop.transport is Transport.TCP and _by_size(next_hop_uri(request)):
            def over_udp() -> tuple[Request, Hop, str]:
                udp_headers = base.copy()
                udp_hop, udp_via = self._route(request, udp_headers, destination, branch,
                                               transport=Transport.UDP)
                return (Request(method=request.method, uri=request.uri,
                                headers=udp_headers, body=request.body), udp_hop, udp_via)
            tx._fallback = over_udp
        return tx

    def send_ack(self, ack: Request, destination: Address) -> None:
        """Send the TU's ACK for a 2xx statelessly, with a fresh branch in a new top Via."""
        headers = ack.headers.copy()
        if "Max-Forwards" not in headers:
            headers.add("Max-Forwards", "70")
        try:
            hop, _ = self._route(ack, headers, destination, new_branch())
        except ValueError as e:
            log.error("ACK {call_id} to {uri}: cannot send: {reason}",
                      call_id=ack.headers.get("Call-ID"), uri=str(ack.uri), reason=str(e))
            return
        self._send(Request(method=ack.method, uri=ack.uri, headers=headers,
                           body=ack.body).to_bytes(), hop)

    def _route(self, request: Request, headers: Headers, destination: Address,
               branch: str, *, transport: Transport | None = None) -> tuple[Hop, str]:
        """Pick the transport of an outgoing request (unless given) and add our top Via
        for it to ``headers``; the hop and the Via. ValueError when no transport fits
        the URI."""
        uri = next_hop_uri(request)
        if transport is None:
            udp_via = self._via(Transport.UDP, branch)
            size = len(Request(method=request.method, uri=request.uri, headers=headers,
                               body=request.body).to_bytes()) + len(udp_via) + 7
            transport = select_transport(uri, size, available=self._available)
        host, port = destination
        if uri.port is None and transport is Transport.TLS:
            port = default_port(transport)
        via = self._via(transport, branch)
        headers.add("Via", via, first=True)
        self._localize_contact(headers, transport)
        server_name = uri.host[1:-1] if uri.host.startswith("[") else uri.host
        return Hop(host=host, port=port, transport=transport,
                   server_name=server_name), via

    def _via(self, transport: Transport, branch: str) -> str:
        # RFC 5923 alias: the peer may send its requests back over our connection.
        alias = ";alias" if transport.reliable else ""
        return (f"SIP/2.0/{transport.via_name} {self._host}:{self._ports[transport]}"
                f";branch={branch};rport{alias}")

    def _localize_contact(self, headers: Headers, transport: Transport) -> None:
        """Our UDP Contact becomes the one for ``transport`` (TCP: ``;transport=tcp`` and
        the TCP port; TLS: ``sips:`` and the TLS port); any other Contact stays."""
        if not transport.reliable:
            return
        contacts = headers.get_all("Contact")
        if len(contacts) != 1:
            return
        try:
            contact = NameAddr.parse(contacts[0])
        except SipParseError:
            return
        uri = contact.uri
        if not isinstance(uri, SipURI) or uri.scheme != "sip" or uri.params \
                or (uri.host, uri.port) != (self._host, self._ports[Transport.UDP]):
            return
        if transport is Transport.TLS:
            uri = attrs.evolve(uri, scheme="sips", port=self._ports[transport])
        else:
            uri = attrs.evolve(uri, port=self._ports[transport],
                               params=(("transport", "tcp"),))
        headers.set("Contact", str(attrs.evolve(contact, uri=uri)))

    def transport_failed(self, transport: Transport, address: Address) -> None:
        """A connection to ``address`` could not be made (refused, timed out, TLS
        handshake or certificate check failed): client transactions sent there with no
        response yet end now, as timeouts, not after timer B or F (RFC 3261 17.1.1.2,
        17.1.2.2)."""
        for tx in list(self._client.values()):
            hop = tx.destination
            if hop.transport is transport and hop.address == address:
                tx._transport_error()

    # -- internals --

    def _start_client(self, request: Request, destination: Hop, branch: str, via: str,
                      *, on_response: Callable[[Response], None],
                      on_timeout: Callable[[], None],
                      on_send_error: Callable[[], None] | None = None) -> ClientTransaction:
        tx = ClientTransaction(self, request, destination, branch, via, on_response,
                               on_timeout, on_send_error)
        self._client[tx.key] = tx
        tx._start()
        return tx

    def _send(self, data: bytes, destination: Hop) -> bool:
        """Hand bytes to the wire; False when the send function failed (or said so)."""
        try:
            return self._send_fn(data, destination) is not False
        except Exception:
            log.failure("sending {size} bytes to {destination} failed", size=len(data),
                        destination=destination)
            return False

    def _call_tu(self, callback: Callable[..., None], *args: Any) -> bool:
        """Run a TU callback; an exception is logged, never raised into the clock."""
        try:
            callback(*args)
        except Exception:
            log.failure("transaction user callback {callback} failed",
                        callback=getattr(callback, "__qualname__", repr(callback)))
            return False
        return True

    def _tu_ack(self, request: Request, source: Address) -> None:
        self._call_tu(self._tu.ack_received, request, source)

    def _forget_server(self, tx: ServerTransaction) -> None:
        if self._server.get(tx._key) is tx:
            del self._server[tx._key]
        if tx._invite:
            try:
                ack_key = tx._ack_key()
            except SipParseError:
                return
            if self._accepted.get(ack_key) is tx:
                del self._accepted[ack_key]

    def _forget_client(self, tx: ClientTransaction) -> None:
        if self._client.get(tx.key) is tx:
            del self._client[tx.key]


def _by_size(uri: SipURI) -> bool:
    """Whether TCP for ``uri`` can only come from the request's size (no sips:, no
    transport parameter): then UDP is the fallback (RFC 3261 18.1.1)."""
    return uri.scheme == "sip" and uri.param("transport") is None


def _server_key(request: Request, top: Via, method: str) -> _ServerKey:
    """RFC 3261 17.2.3 matching key; the RFC 2543 fallback for old-style branches."""
    branch = top.branch
    host, port = top.sent_by()
    host = host.lower()
    if branch is not None and branch.startswith(BRANCH_MAGIC):
        return (branch, host, port, method)
    return ("rfc2543", request.call_id, request.cseq[0], request.from_.tag, host, port,
            method)
