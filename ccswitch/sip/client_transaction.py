"""RFC 3261 client transactions (17.1, with RFC 6026 Accepted): one request we sent and
the responses to it.

Created by :class:`~ccswitch.sip.transaction.TransactionLayer`, which routes the request
(transport, top Via) and matches responses to it. Here: retransmission (timers A, E,
not over TCP or TLS), the timeouts B and F, the ACK for a non-2xx INVITE final, CANCEL,
the retry over UDP when a TCP connection chosen for the request's size fails, and the
end timers D, K, M.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from twisted.logger import Logger

from ccswitch.sip.hop import Hop
from ccswitch.sip.message import Headers, Request, Response
from ccswitch.sip.transaction_states import ICT, NICT, TIMER_D, ClientKey, State, Transaction

if TYPE_CHECKING:
    from ccswitch.sip.transaction import TransactionLayer

log = Logger()


def _status_event(status: int) -> str:
    if status < 200:
        return "1xx"
    if status < 300:
        return "2xx"
    return "300-699"


class ClientTransaction(Transaction):
    """One request we sent and the responses to it."""

    def __init__(self, layer: TransactionLayer, request: Request, destination: Hop,
                 branch: str, via: str, on_response: Callable[[Response], None],
                 on_timeout: Callable[[], None],
                 on_send_error: Callable[[], None] | None = None) -> None:
        invite = request.method == "INVITE"
        super().__init__(layer, State.CALLING if invite else State.TRYING)
        self._kind = ICT if invite else NICT
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
    def key(self) -> ClientKey:
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

