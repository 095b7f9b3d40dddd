"""Who may see what in the portal: pure rules over a session's role and vendor."""

from __future__ import annotations

from typing import Iterable

from ccswitch.portal.auth import Session
from ccswitch.portal.users import Role

INHOUSE = "inhouse"


def can_see_wallboard(session: Session) -> bool:
    """The live wallboard shows every agent and queue: supervisors and admins only."""
    return session.role in (Role.ADMIN, Role.SUPERVISOR)


def can_compare(session: Session) -> bool:
    """Every role sees the vendor comparison (a vendor reviewer only its own line)."""
    return session.role in tuple(Role)


def visible_routes(session: Session, routes: Iterable[str]) -> list[str]:
    """The comparison's routes (``inhouse`` or a vendor) this session may see."""
    if session.role == Role.VENDOR_REVIEWER:
        return [r for r in routes if r == session.vendor]
    return list(routes)


def can_play(session: Session, call_vendor: str | None) -> bool:
    """Whether the session may play a call's recording: a vendor reviewer only the calls
    its vendor handled; every other role any call."""
    if session.role == Role.VENDOR_REVIEWER:
        return call_vendor is not None and call_vendor == session.vendor
    return session.role in tuple(Role)
