"""Password hashing, login limits, sessions and CSRF (pure cores, a fake clock)."""

from __future__ import annotations

from twisted.internet.task import Clock

from ccswitch.portal.auth import (
    LoginLimiter, SessionStore, csrf_ok, hash_password, tokens_match, verify_password,
)


def test_argon2_hash_verifies_the_right_password_only() -> None:
    """An argon2id hash accepts its password and refuses another."""
    stored = hash_password("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "correct horse battery")
    assert not verify_password(stored, "correct horse batterY")


def test_unknown_user_never_verifies() -> None:
    """No stored hash (no such user) is refused, whatever the password."""
    assert not verify_password(None, "anything at all")


def test_user_locked_after_repeated_failures() -> None:
    """The fifth failure for one user locks that user out, from any source."""
    clock = Clock()
    limiter = LoginLimiter(clock, user_failures=5, source_failures=100, lockout=300)
    for i in range(4):
        assert limiter.failed(f"10.0.0.{i}", "ann") is None
    started = limiter.failed("10.0.0.9", "ann")
    assert started is not None and started.scope == "user"
    locked = limiter.locked("10.0.0.77", "ann")
    assert locked is not None and locked.scope == "user"


def test_source_locked_after_failures_on_many_users() -> None:
    """A source that fails on many user names is locked out for every name."""
    limiter = LoginLimiter(Clock(), user_failures=5, source_failures=3)
    for name in ("a", "b", "c"):
        limiter.failed("192.0.2.1", name)
    locked = limiter.locked("192.0.2.1", "zed")
    assert locked is not None and locked.scope == "source"


def test_lockout_ends_after_its_time() -> None:
    """A lockout lifts once its seconds have passed."""
    clock = Clock()
    limiter = LoginLimiter(clock, user_failures=1, lockout=60)
    limiter.failed("192.0.2.1", "ann")
    clock.advance(59)
    assert limiter.locked("192.0.2.1", "ann") is not None
    clock.advance(2)
    assert limiter.locked("192.0.2.1", "ann") is None


def test_failures_outside_the_window_do_not_count() -> None:
    """Failures older than the window are forgotten."""
    clock = Clock()
    limiter = LoginLimiter(clock, user_failures=2, source_failures=100, window=10)
    limiter.failed("s", "ann")
    clock.advance(11)
    assert limiter.failed("s", "ann") is None


def test_session_found_by_its_token_until_it_expires() -> None:
    """A session is found by its cookie token, and not after its ttl."""
    clock = Clock()
    store = SessionStore(clock, ttl=100)
    token, session = store.create(username="ann", role="supervisor", vendor=None)
    assert store.get(token) == session
    clock.advance(100)
    assert store.get(token) is None


def test_forged_session_token_is_unknown() -> None:
    """A token the store did not issue finds no session."""
    store = SessionStore(Clock(), ttl=100)
    token, _ = store.create(username="ann", role="admin", vendor=None)
    assert store.get(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert store.get("") is None and store.get(None) is None


def test_logout_ends_the_session() -> None:
    """After end() the token no longer finds the session."""
    store = SessionStore(Clock(), ttl=100)
    token, _ = store.create(username="ann", role="admin", vendor=None)
    assert store.end(token) is not None
    assert store.get(token) is None


def test_csrf_token_must_match_the_session() -> None:
    """Only the session's own CSRF token passes; missing or another does not."""
    store = SessionStore(Clock(), ttl=100)
    _, session = store.create(username="ann", role="admin", vendor=None)
    _, other = store.create(username="bob", role="admin", vendor=None)
    assert csrf_ok(session, session.csrf)
    assert not csrf_ok(session, other.csrf)
    assert not csrf_ok(session, None)
    assert not csrf_ok(session, "")


def test_sessions_of_removed_or_changed_users_end() -> None:
    """retain() ends sessions whose user is gone or has a newer row version."""
    store = SessionStore(Clock(), ttl=100)
    kept, _ = store.create(username="ann", role="admin", vendor=None, version=5)
    changed, _ = store.create(username="bob", role="admin", vendor=None, version=5)
    gone, _ = store.create(username="cy", role="admin", vendor=None, version=5)
    ended = store.retain({"ann": 5, "bob": 6})
    assert sorted(s.username for s in ended) == ["bob", "cy"]
    assert store.get(kept) is not None
    assert store.get(changed) is None and store.get(gone) is None


def test_login_form_token_must_match_its_cookie() -> None:
    """The login form's token passes only when equal to its cookie, and never when empty."""
    assert tokens_match("abc123", "abc123")
    assert not tokens_match("abc123", "abc124")
    assert not tokens_match("", "") and not tokens_match(None, "x")
