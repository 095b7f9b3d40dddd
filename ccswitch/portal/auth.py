"""Pure authentication cores: password hashing, login rate limits and sessions.

Nothing here does I/O; time comes from an injected clock (``seconds()``), so unit
tests drive a ``twisted.internet.task.Clock``.

- Passwords are argon2id hashes (argon2-cffi's defaults). Checking an unknown user
  still runs one verification against a fixed hash, so a wrong name and a wrong
  password take the same time.
- :class:`LoginLimiter` counts failed logins per source address and per user name
  within ``window`` seconds; past the limit that source or that user is locked out
  for ``lockout`` seconds (a correct password does not get through meanwhile).
- :class:`SessionStore` keeps sessions server-side. The browser holds only a random
  token; the store keys sessions by the token's SHA-256, so a dump of it holds no
  usable cookie. Each session has its own CSRF token and expires ``ttl`` seconds
  after login.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Mapping, Protocol

import attrs
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_HASHER = PasswordHasher()
# Verified against when the user does not exist, so both paths cost one argon2 run.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))
#: Distinct sources / users tracked by the limiter at most; older entries go first.
MAX_TRACKED = 10_000


class Clock(Protocol):
    def seconds(self) -> float: ...


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (with a fresh salt)."""
    return _HASHER.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash``; None (no such user) is always False
    but costs as much as a real check."""
    try:
        return _HASHER.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@attrs.frozen(kw_only=True)
class Lockout:
    """Why a login is refused before its password is checked, and for how long."""

    scope: str  # "source" or "user"
    seconds_left: float


class LoginLimiter:
    """Failed logins per source and per user; see the module docstring."""

    def __init__(self, clock: Clock, *, user_failures: int = 5, source_failures: int = 20,
                 window: float = 300.0, lockout: float = 300.0) -> None:
        self._clock = clock
        self._limits = {"source": source_failures, "user": user_failures}
        self._window = window
        self._lockout = lockout
        self._failures: dict[tuple[str, str], list[float]] = {}
        self._locked: dict[tuple[str, str], float] = {}

    def locked(self, source: str, user: str) -> Lockout | None:
        """The lockout in force for this source or user, if any."""
        now = self._clock.seconds()
        for key in (("source", source), ("user", user)):
            until = self._locked.get(key)
            if until is not None:
                if until > now:
                    return Lockout(scope=key[0], seconds_left=until - now)
                del self._locked[key]
        return None

    def failed(self, source: str, user: str) -> Lockout | None:
        """Count one failed login; returns the lockout it starts, if it starts one."""
        now = self._clock.seconds()
        started = None
        for key in (("source", source), ("user", user)):
            recent = [t for t in self._failures.get(key, ()) if now - t < self._window]
            recent.append(now)
            self._failures[key] = recent
            if len(recent) >= self._limits[key[0]]:
                self._locked[key] = now + self._lockout
                del self._failures[key]
                started = started or Lockout(scope=key[0], seconds_left=self._lockout)
        self._bound()
        return started

    def succeeded(self, user: str) -> None:
        """A correct login clears the user's failures (not the source's)."""
        self._failures.pop(("user", user), None)

    def _bound(self) -> None:
        for table in (self._failures, self._locked):
            while len(table) > MAX_TRACKED:
                del table[next(iter(table))]


@attrs.frozen(kw_only=True)
class Session:
    """One logged-in user."""

    username: str
    role: str
    vendor: str | None
    csrf: str
    expires: float
    #: the user row's ``updated_ms`` at login: a later password change or removal ends it
    version: int = 0


def _key(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class SessionStore:
    """Server-side sessions keyed by the SHA-256 of their cookie token."""

    def __init__(self, clock: Clock, *, ttl: float) -> None:
        self._clock = clock
        self._ttl = ttl
        self._sessions: dict[bytes, Session] = {}

    def create(self, *, username: str, role: str, vendor: str | None,
               version: int = 0) -> tuple[str, Session]:
        """A new session: (cookie token, session)."""
        self._expire()
        token = secrets.token_urlsafe(32)
        session = Session(username=username, role=role, vendor=vendor,
                          csrf=secrets.token_urlsafe(32),
                          expires=self._clock.seconds() + self._ttl, version=version)
        self._sessions[_key(token)] = session
        return token, session

    def get(self, token: str | None) -> Session | None:
        """The live session of ``token``; None for an unknown, forged or expired one."""
        if not token:
            return None
        key = _key(token)
        session = self._sessions.get(key)
        if session is not None and session.expires <= self._clock.seconds():
            del self._sessions[key]
            return None
        return session

    def end(self, token: str | None) -> Session | None:
        """Log a session out; returns it if it was live."""
        session = self.get(token)
        if session is not None and token:
            del self._sessions[_key(token)]
        return session

    def retain(self, versions: Mapping[str, int]) -> list[Session]:
        """End the sessions whose user is not in ``versions`` (user -> row version) or
        changed since login; returns the ended ones."""
        ended = [(k, s) for k, s in self._sessions.items()
                 if versions.get(s.username) != s.version]
        for key, _ in ended:
            del self._sessions[key]
        return [s for _, s in ended]

    def __len__(self) -> int:
        return len(self._sessions)

    def _expire(self) -> None:
        now = self._clock.seconds()
        for key in [k for k, s in self._sessions.items() if s.expires <= now]:
            del self._sessions[key]


def tokens_match(expected: str | None, submitted: str | None) -> bool:
    """Whether two tokens are present and equal (compared in constant time)."""
    return bool(expected) and submitted is not None and expected is not None \
        and hmac.compare_digest(submitted.encode("utf-8", "surrogatepass"),
                                expected.encode("utf-8", "surrogatepass"))


def csrf_ok(session: Session, submitted: str | None) -> bool:
    """Whether a form's CSRF token is this session's."""
    return tokens_match(session.csrf, submitted)
