"""Portal users in a real CDR database: a SQLite file and a throwaway PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.internet.task import Clock

from ccswitch.cdr.store import Target
from ccswitch.portal.auth import verify_password
from ccswitch.portal.users import Role, UserError, UserStore
from tests.pgd import PostgresServer, postgres_server

__all__ = ["postgres_server"]  # the fixture, used through getfixturevalue

PASSWORD = "a long enough password"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[UserStore]:
    target: Target = tmp_path / "cdr.sqlite"
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        target = server.new_database()
    opened = UserStore(target, Clock())
    try:
        yield opened
    finally:
        opened.close()


def test_added_user_has_an_argon2_hash_not_the_password(store: UserStore) -> None:
    """A new user's row holds an argon2id hash that verifies the password."""
    user = store.add("vic", PASSWORD, "vendor_reviewer", "acme")
    assert user.role is Role.VENDOR_REVIEWER and user.vendor == "acme"
    assert PASSWORD not in user.password_hash and verify_password(user.password_hash, PASSWORD)


def test_vendor_reviewer_needs_a_vendor(store: UserStore) -> None:
    """A vendor reviewer without --vendor is refused."""
    with pytest.raises(UserError, match="needs --vendor"):
        store.add("vic", PASSWORD, "vendor_reviewer", None)


def test_only_vendor_reviewers_have_a_vendor(store: UserStore) -> None:
    """A supervisor bound to a vendor is refused."""
    with pytest.raises(UserError, match="only a vendor_reviewer"):
        store.add("sue", PASSWORD, "supervisor", "acme")


def test_short_password_is_refused(store: UserStore) -> None:
    """Passwords under the minimum length are refused."""
    with pytest.raises(UserError, match="at least"):
        store.add("sue", "short", "supervisor", None)


def test_sql_in_a_user_name_is_refused(store: UserStore) -> None:
    """A name with SQL metacharacters is not a valid user name."""
    with pytest.raises(UserError, match="user name"):
        store.add("x'; DROP TABLE users; --", PASSWORD, "admin", None)


def test_password_change_bumps_the_version(store: UserStore) -> None:
    """A new password changes the user's version (ending its sessions)."""
    before = store.add("sue", PASSWORD, "supervisor", None).version
    store.set_password("sue", "another long password")
    assert store.versions()["sue"] > before


def test_duplicate_user_is_refused(store: UserStore) -> None:
    """Adding an existing name is refused with a clear error."""
    store.add("sue", PASSWORD, "supervisor", None)
    with pytest.raises(UserError, match="already exists"):
        store.add("sue", PASSWORD, "admin", None)


def test_removing_an_unknown_user_is_an_error(store: UserStore) -> None:
    """remove of a name that does not exist raises UserError."""
    with pytest.raises(UserError, match="no user"):
        store.remove("nobody")
