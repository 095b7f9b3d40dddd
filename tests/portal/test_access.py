"""Who sees what: roles and the vendor binding of a vendor reviewer."""

from __future__ import annotations

import pytest

from ccswitch.portal import access
from ccswitch.portal.auth import Session


def session(role: str, vendor: str | None = None) -> Session:
    return Session(username="u", role=role, vendor=vendor, csrf="x", expires=1e12)


def test_vendor_reviewer_plays_only_its_vendors_calls() -> None:
    """A vendor reviewer may play its vendor's calls, not another's nor in-house ones."""
    me = session("vendor_reviewer", "acme")
    assert access.can_play(me, "acme")
    assert not access.can_play(me, "globex")
    assert not access.can_play(me, None)


@pytest.mark.parametrize("role", ["admin", "supervisor", "qa_reviewer"])
def test_other_roles_play_any_call(role: str) -> None:
    """Admins, supervisors and QA reviewers may play any call."""
    assert access.can_play(session(role), "globex") and access.can_play(session(role), None)


def test_wallboard_only_for_supervisors_and_admins() -> None:
    """QA and vendor reviewers do not see the wallboard."""
    assert access.can_see_wallboard(session("supervisor"))
    assert access.can_see_wallboard(session("admin"))
    assert not access.can_see_wallboard(session("qa_reviewer"))
    assert not access.can_see_wallboard(session("vendor_reviewer", "acme"))


def test_vendor_reviewer_sees_only_its_route_in_the_comparison() -> None:
    """The comparison shows a vendor reviewer its own vendor's line only."""
    routes = ["inhouse", "acme", "globex"]
    assert access.visible_routes(session("vendor_reviewer", "acme"), routes) == ["acme"]
    assert access.visible_routes(session("supervisor"), routes) == routes


def test_unknown_role_plays_nothing() -> None:
    """A session with a role the portal does not know may not play recordings."""
    assert not access.can_play(session("intern"), None)
