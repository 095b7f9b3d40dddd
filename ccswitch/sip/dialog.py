"""SIP dialog state (RFC 3261 section 12) shared by the caller and agent legs."""

from __future__ import annotations

import attrs

from ccswitch.sip.message import Headers, NameAddr, Request, Response, SipURI


@attrs.define(kw_only=True)
class Dialog:
    """One side of a dialog as ccswitch sees it, enough to send in-dialog requests."""

    call_id: str
    local: NameAddr
    remote: NameAddr
    remote_target: SipURI
    route_set: tuple[str, ...]
    local_cseq: int
    contact: str

    @classmethod
    def as_uas(cls, invite: Request, *, local_tag: str, contact: str) -> Dialog:
        """The dialog a 2xx to ``invite`` creates on our (server) side."""
        return cls(
            call_id=invite.call_id,
            local=invite.to.with_tag(local_tag),
            remote=invite.from_,
            remote_target=_contact_uri(invite.headers) or invite.from_.sip_uri,
            route_set=tuple(invite.headers.get_all("Record-Route")),
            local_cseq=0,
            contact=contact,
        )

    @classmethod
    def as_uac(cls, invite: Request, response: Response, *, contact: str) -> Dialog:
        """The dialog a 2xx ``response`` to our ``invite`` creates on our (client) side."""
        return cls(
            call_id=invite.call_id,
            local=invite.from_,
            remote=response.to,
            remote_target=_contact_uri(response.headers) or invite.uri,
            route_set=tuple(reversed(response.headers.get_all("Record-Route"))),
            local_cseq=invite.cseq[0],
            contact=contact,
        )

    def request(self, method: str, *, body: bytes = b"", content_type: str | None = None,
                user_agent: str = "ccswitch") -> Request:
        """A new in-dialog request (BYE, re-INVITE, INFO) with the next CSeq."""
        self.local_cseq += 1
        return self._build(method, self.local_cseq, body=body, content_type=content_type,
                           user_agent=user_agent)

    def ack(self, cseq: int, *, user_agent: str = "ccswitch") -> Request:
        """The ACK for a 2xx to the INVITE with CSeq number ``cseq``."""
        return self._build("ACK", cseq, user_agent=user_agent)

    def destination(self) -> tuple[str, int]:
        """Where in-dialog requests go: the first loose route, else the remote target."""
        if self.route_set:
            return NameAddr.parse(self.route_set[0]).sip_uri.host_port()
        return self.remote_target.host_port()

    def _build(self, method: str, cseq: int, *, body: bytes = b"",
               content_type: str | None = None, user_agent: str) -> Request:
        headers = Headers()
        for route in self.route_set:
            headers.add("Route", route)
        headers.add("Max-Forwards", "70")
        headers.add("From", str(self.local))
        headers.add("To", str(self.remote))
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{cseq} {method}")
        headers.add("Contact", self.contact)
        headers.add("User-Agent", user_agent)
        if content_type is not None:
            headers.add("Content-Type", content_type)
        return Request(method=method, uri=self.remote_target, headers=headers, body=body)


def _contact_uri(headers: Headers) -> SipURI | None:
    contacts = headers.get_all("Contact")
    if not contacts:
        return None
    return NameAddr.parse(contacts[0]).sip_uri
