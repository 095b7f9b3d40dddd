"""What every leg of a call sends the same way: request heads, BYE, ACK, rejections.

:class:`Signalling` knows our Contact and User-Agent and the transaction layer
(bound once the SIP port listens); the inbound and outbound legs share it.
"""

from __future__ import annotations

from typing import Iterable

from twisted.logger import Logger

from ccswitch.errors import SipParseError
from ccswitch.calls.legs import uri_host
from ccswitch.metrics.registry import Metrics
from ccswitch.model import Config
from ccswitch.sip.dialog import Dialog
from ccswitch.sip.message import Headers, NameAddr, SipURI, new_call_id, new_tag
from ccswitch.sip.transaction import ServerTransaction, TransactionLayer

log = Logger()

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE"
SDP = "application/sdp"


class Signalling:
    """Sends the requests and answers common to every leg."""

    def __init__(self, config: Config, metrics: Metrics) -> None:
        self._metrics = metrics
        self._layer: TransactionLayer | None = None
        self.config = config
        self.contact = self._contact_for(config.sip.listen_port)

    def _contact_for(self, port: int) -> str:
        return f"<sip:ccswitch@{uri_host(self.config.sip.advertised_host)}:{port}>"

    def attach(self, layer: TransactionLayer, listen_port: int) -> None:
        """Bind to the transaction layer once the SIP port is listening."""
        self._layer = layer
        self.contact = self._contact_for(listen_port)

    @property
    def layer(self) -> TransactionLayer:
        assert self._layer is not None, "attach() comes before any SIP"
        return self._layer

    @property
    def user_agent(self) -> str:
        return self.config.sip.user_agent

    def request_headers(self, method: str, uri: SipURI, user: str | None,
                        display: str | None = None) -> Headers:
        """Max-Forwards, From (``user`` at our address, a new tag), To, a new Call-ID and
        CSeq 1: the head of a request outside any dialog."""
        host = self.config.sip.advertised_host
        headers = Headers()
        headers.add("Max-Forwards", "70")
        headers.add("From", str(NameAddr(display=display, uri=SipURI(
            user=user, host=uri_host(host)), params=(("tag", new_tag()),))))
        headers.add("To", str(NameAddr(uri=uri)))
        headers.add("Call-ID", new_call_id(host))
        headers.add("CSeq", f"1 {method}")
        return headers

    def answer_headers(self) -> list[tuple[str, str]]:
        return [("Contact", self.contact), ("Allow", ALLOW), ("User-Agent", self.user_agent)]

    def send_bye(self, dialog: Dialog) -> None:
        """BYE the dialog's far end; a dialog whose route cannot be used is logged (the
        call ends on our side all the same)."""
        try:
            bye = dialog.request("BYE", user_agent=self.user_agent)
            destination = dialog.destination()
        except SipParseError as e:
            log.warn("no BYE for {sip_call_id}: unusable route ({reason})",
                     sip_call_id=dialog.call_id, reason=e.reason)
            return
        self.layer.request(bye, destination, on_response=lambda r: None,
                           on_timeout=lambda: log.warn("BYE for {sip_call_id} timed out",
                                                       sip_call_id=dialog.call_id))

    def send_ack(self, dialog: Dialog, cseq: int) -> None:
        self.layer.send_ack(dialog.ack(cseq, user_agent=self.user_agent), dialog.destination())

    def reject(self, tx: ServerTransaction, status: int, reason: str | None,
               headers: Iterable[tuple[str, str]] = ()) -> None:
        """Answer a request with an error, counted by status."""
        self._metrics.sip_rejected.labels(status=str(status)).inc()
        tx.respond(status, reason, headers=list(headers))  # a To tag if the request had none
