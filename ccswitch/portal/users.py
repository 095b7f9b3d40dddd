"""Portal users in the CDR database (table ``users``, revision 0006), and their roles.

Roles: ``admin`` and ``supervisor`` see everything; ``qa_reviewer`` sees the vendor
comparison and plays any recording; ``vendor_reviewer`` is bound to one vendor and
sees only that vendor's KPIs and calls. The rules are in ``ccswitch.portal.access``.
"""

from __future__ import annotations

import enum
import re
from pathlib import Path

import attrs
from sqlalchemy import Engine, create_engine, delete, insert, select, update
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ccswitch.cdr.errors import CdrError
from ccswitch.cdr.schema import users
from ccswitch.cdr.store import CdrStore, Target, describe
from ccswitch.errors import CCSwitchError
from ccswitch.portal.auth import Clock, hash_password

USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
MIN_PASSWORD = 10


class Role(enum.StrEnum):
    ADMIN = "admin"
    SUPERVISOR = "supervisor"
    QA_REVIEWER = "qa_reviewer"
    VENDOR_REVIEWER = "vendor_reviewer"


class UserError(CCSwitchError, ValueError):
    """A user command cannot be carried out (bad name, role, password, unknown user)."""

    error_id = "portal.user"


@attrs.frozen(kw_only=True)
class User:
    username: str
    password_hash: str = attrs.field(repr=False)
    role: Role
    vendor: str | None
    version: int  # updated_ms: changes with every password change


def check_user(username: str, role: str, vendor: str | None) -> Role:
    """The role, after checking the name and that only a vendor reviewer has a vendor."""
    if not USERNAME.fullmatch(username):
        raise UserError(f"user name must be 1-64 letters, digits, '.', '_', '@' or '-', "
                        f"starting with a letter or digit, got {username!r}")
    try:
        parsed = Role(role)
    except ValueError:
        raise UserError(f"role must be one of {', '.join(r.value for r in Role)}, "
                        f"got {role!r}") from None
    if parsed is Role.VENDOR_REVIEWER and not vendor:
        raise UserError("a vendor_reviewer needs --vendor (the vendor whose calls they see)")
    if parsed is not Role.VENDOR_REVIEWER and vendor:
        raise UserError(f"only a vendor_reviewer is bound to a vendor, not a {parsed.value}")
    return parsed


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password must have at least {MIN_PASSWORD} characters")


def _engine(target: Target) -> Engine:
    if isinstance(target, Path):
        return create_engine(URL.create("sqlite", database=str(target)),
                             connect_args={"check_same_thread": False, "timeout": 5.0})
    return create_engine(make_url(target).set(drivername="postgresql+psycopg"),
                         pool_pre_ping=True, connect_args={"connect_timeout": 3})


class UserStore:
    """The users table; blocking (call it from a thread in the reactor)."""

    def __init__(self, target: Target, clock: Clock) -> None:
        CdrStore(target).close()  # creates or migrates the schema, users table included
        self.name = describe(target)
        self._engine = _engine(target)
        self._clock = clock

    def _now_ms(self) -> int:
        return round(self._clock.seconds() * 1000)

    def get(self, username: str) -> User | None:
        try:
            with self._engine.connect() as c:
                row = c.execute(select(users).where(users.c.username == username)).first()
        except SQLAlchemyError as e:
            raise CdrError(f"cannot read users from {self.name}: {e.__class__.__name__}") from e
        if row is None:
            return None
        return User(username=row.username, password_hash=row.password_hash,
                    role=Role(row.role), vendor=row.vendor, version=row.updated_ms)

    def list(self) -> list[User]:
        with self._engine.connect() as c:
            rows = c.execute(select(users).order_by(users.c.username)).all()
        return [User(username=r.username, password_hash=r.password_hash, role=Role(r.role),
                     vendor=r.vendor, version=r.updated_ms) for r in rows]

    def versions(self) -> dict[str, int]:
        """user -> row version, to end the sessions of removed or changed users."""
        with self._engine.connect() as c:
            rows = c.execute(select(users.c.username, users.c.updated_ms)).all()
        return {r.username: r.updated_ms for r in rows}

    def add(self, username: str, password: str, role: str, vendor: str | None) -> User:
        parsed = check_user(username, role, vendor)
        check_password(password)
        now = self._now_ms()
        try:
            with self._engine.begin() as c:
                c.execute(insert(users).values(
                    username=username, password_hash=hash_password(password),
                    role=parsed.value, vendor=vendor, created_ms=now, updated_ms=now))
        except IntegrityError:
            raise UserError(f"user {username!r} already exists") from None
        user = self.get(username)
        assert user is not None
        return user

    def set_password(self, username: str, password: str) -> None:
        check_password(password)
        stored = hash_password(password)
        with self._engine.begin() as c:
            old = c.execute(select(users.c.updated_ms)
                            .where(users.c.username == username)).scalar()
            if old is None:
                raise UserError(f"no user {username!r}")
            # +1 at least, so the version changes even within the same millisecond
            c.execute(update(users).where(users.c.username == username).values(
                password_hash=stored, updated_ms=max(self._now_ms(), old + 1)))

    def remove(self, username: str) -> None:
        with self._engine.begin() as c:
            done = c.execute(delete(users).where(users.c.username == username)).rowcount
        if not done:
            raise UserError(f"no user {username!r}")

    def close(self) -> None:
        self._engine.dispose()
