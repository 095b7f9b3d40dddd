"""RFC 3261 server transactions (17.2, with RFC 6026 Accepted): one received request
and the responses the TU sends to it.

Created and matched by :class:`~ccswitch.sip.transaction.TransactionLayer`, which also
works out where responses go (RFC 3261 18.2.2 / RFC 3581, see its module docstring).
Here: the To tag, the state change per response sent, answering a retransmitted request,
absorbing or passing on the ACK, and the final response's retransmission and end timers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable

from twisted.logger import Logger

from ccswitch.errors import SipParseError
from ccswitch.sip.hop import Hop
from ccswitch.sip.message import Request, Response, make_response, new_tag
from ccswitch.sip.transaction_states import IST, NIST, Address, ServerKey, State, Transaction

if TYPE_CHECKING:
    from ccswitch.sip.transaction import TransactionLayer

log = Logger()


class ServerTransaction(Transaction):
    """One received request and the responses the TU sends to it."""

    def __init__(self, layer: TransactionLayer, request: Request, source: Address,
                 key: ServerKey, destination: Hop) -> None:
        invite = request.method == "INVITE"
        super().__init__(layer, State.PROCEEDING if invite else State.TRYING)
        self._kind = IST if invite else NIST
        self.request = request
        self.source = source
        self.destination = destination
        """Where responses go (RFC 3261 18.2.2 / RFC 3581): see
        :mod:`ccswitch.sip.transaction`."""
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
