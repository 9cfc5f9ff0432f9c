"""Users, API tokens and the audit log in SQL; passwords hashed with Argon2id."""

from __future__ import annotations

import json
import time
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Engine, case, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError

from core.accounts import (
    SESSION_TOUCH_S,
    Principal,
    Role,
    address_key,
    check_email,
    check_password,
    check_token_name,
    hash_token,
    new_session_id,
    new_token,
    refusal_window,
    session_alive,
)
from core.adapters import db_errors
from core.adapters import tables as t
from core.errors import Conflict, NotFound

_hasher = PasswordHasher()
_dummy: tuple[PasswordHasher, str] | None = None


def dummy_hash() -> str:
    """A hash at `_hasher`'s cost to verify "no such user" against, as slow as a wrong password.

    Made when first needed (a web process makes it at boot, in warm_up), not at import: every
    CLI command and worker start paid its 150 ms for nothing."""
    global _dummy
    if _dummy is None or _dummy[0] is not _hasher:
        _dummy = (_hasher, _hasher.hash("not-a-real-password-used-for-timing"))
    return _dummy[1]


SEVERAL_ACTORS = "(several)"


def _revoke_sessions(conn: Connection, user_id: int, now: float, keep: str | None = None) -> int:
    """End every live session of a user (but `keep`, a session id); one rule for the CLI's
    account changes and the newsroom's "sign out of all other devices"."""
    s = t.sessions
    query = update(s).where(s.c.user_id == user_id, s.c.revoked_at.is_(None))
    if keep is not None:
        query = query.where(s.c.id != hash_token(keep))
    return int(conn.execute(query.values(revoked_at=now)).rowcount)


class SqlAccounts:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_user(self, email: str, password: str, role: Role) -> int:
        email = check_email(email)
        check_password(password)
        try:
            with self.engine.begin() as conn:
                return int(
                    conn.execute(
                        insert(t.users)
                        .values(
                            email=email,
                            password_hash=_hasher.hash(password),
                            role=role.value,
                            created_at=time.time(),
                            disabled=False,
                        )
                        .returning(t.users.c.id)
                    ).scalar_one()
                )
        except IntegrityError:
            raise Conflict("a user with this email exists", "email") from None

    def authenticate(self, email: str, password: str) -> Principal | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(t.users).where(t.users.c.email == email.strip().lower()))
                .mappings()
                .first()
            )
        try:
            if row is None or row["disabled"]:
                _hasher.verify(dummy_hash(), password)
                return None
            _hasher.verify(row["password_hash"], password)
        except (VerificationError, InvalidHashError):
            return None
        with self.engine.begin() as conn:
            values: dict[str, Any] = {"last_login_at": time.time()}
            if _hasher.check_needs_rehash(row["password_hash"]):
                values["password_hash"] = _hasher.hash(password)
            conn.execute(update(t.users).where(t.users.c.id == row["id"]).values(**values))
        return Principal(row["email"], Role(row["role"]), user_id=row["id"])

    # -- sessions -------------------------------------------------------------------------
    def start_session(
        self,
        user_id: int,
        now: float,
        lifetime_s: float,
        device: str | None = None,
        address: str | None = None,
    ) -> str:
        """A new server-side session; the returned id goes into the signed cookie only. `device`
        ("Chrome on Android") and `address` are shown to the user on their account page."""
        session_id, digest = new_session_id()
        with self.engine.begin() as conn:
            # Sessions past their lifetime can never count again: logins keep the table small.
            conn.execute(delete(t.sessions).where(t.sessions.c.created_at < now - lifetime_s))
            conn.execute(
                insert(t.sessions).values(
                    id=digest,
                    user_id=user_id,
                    created_at=now,
                    last_seen_at=now,
                    device=(device or "")[:80] or None,
                    address=(address or "")[:64] or None,
                )
            )
        return session_id

    def live_sessions(
        self, user_id: int, session_id: str, now: float, lifetime_s: float, idle_s: float
    ) -> list[dict[str, Any]]:
        """This user's sessions that still count, most recently used first: a handle (the
        stored digest, never the cookie's id), device, address, start and last use, and
        whether it is `session_id`'s."""
        s = t.sessions
        query = (
            select(s.c.id, s.c.device, s.c.address, s.c.created_at, s.c.last_seen_at)
            .where(
                s.c.user_id == user_id,
                s.c.revoked_at.is_(None),
                s.c.created_at > now - lifetime_s,
                s.c.last_seen_at > now - idle_s,
            )
            .order_by(s.c.last_seen_at.desc(), s.c.created_at.desc())
        )
        this = hash_token(session_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            {
                "handle": r["id"],
                "device": r["device"],
                "address": r["address"],
                "created_at": r["created_at"],
                "last_seen_at": r["last_seen_at"],
                "current": r["id"] == this,
            }
            for r in rows
        ]

    def end_session_of(self, user_id: int, handle: str, now: float) -> str | None:
        """End one session of this user by its handle (live_sessions'); its device, or None if
        this user has no such live session (another user's handle ends nothing)."""
        s = t.sessions
        with self.engine.begin() as conn:
            device = conn.execute(
                select(s.c.device).where(
                    s.c.id == handle, s.c.user_id == user_id, s.c.revoked_at.is_(None)
                )
            ).first()
            if device is None:
                return None
            conn.execute(update(s).where(s.c.id == handle).values(revoked_at=now))
            return device.device or "a browser"

    def session_principal(
        self, session_id: str, now: float, lifetime_s: float, idle_s: float
    ) -> Principal | None:
        """The user behind a live session (refreshing its last use), or None if it has ended."""
        digest = hash_token(session_id)
        query = (
            select(t.sessions, t.users.c.email, t.users.c.role, t.users.c.disabled)
            .join(t.users, t.users.c.id == t.sessions.c.user_id)
            .where(t.sessions.c.id == digest)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None or row["disabled"]:
            return None
        if not session_alive(
            row["created_at"], row["last_seen_at"], row["revoked_at"], now, lifetime_s, idle_s
        ):
            return None
        if now - row["last_seen_at"] >= SESSION_TOUCH_S:
            self._touch(digest, now)
        return Principal(row["email"], Role(row["role"]), user_id=row["user_id"])

    def _touch(self, digest: str, now: float) -> None:
        """The session's last use, when the database takes writes. A database refusing them
        (disk full, read-only: core/adapters/db_errors.py) still lets a signed-in editor read
        the newsroom; the next request tries again."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    update(t.sessions).where(t.sessions.c.id == digest).values(last_seen_at=now)
                )
        except DBAPIError as exc:
            if db_errors.trouble(exc) not in db_errors.REFUSES_WRITES:
                raise

    def end_session(self, session_id: str, now: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(t.sessions)
                .where(t.sessions.c.id == hash_token(session_id), t.sessions.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )

    def end_user_sessions(self, user_id: int, now: float, keep: str | None = None) -> int:
        """Every live session of this user ends, but `keep` (a session id): "sign out of all
        other devices" keeps the browser that asked. Returns how many ended."""
        with self.engine.begin() as conn:
            return _revoke_sessions(conn, user_id, now, keep)

    # -- user administration ------------------------------------------------------------
    def _change_user(self, email: str, now: float, **values: Any) -> int:
        """Apply a change to one user and end all their sessions, in one transaction."""
        email = check_email(email)
        with self.engine.begin() as conn:
            user_id = conn.execute(
                select(t.users.c.id).where(t.users.c.email == email)
            ).scalar_one_or_none()
            if user_id is None:
                raise NotFound("no user with this email", "email")
            conn.execute(update(t.users).where(t.users.c.id == user_id).values(**values))
            return _revoke_sessions(conn, user_id, now)

    def set_disabled(self, email: str, disabled: bool, now: float) -> int:
        """Disable (or enable) a user; returns how many sessions ended."""
        return self._change_user(email, now, disabled=disabled)

    def set_role(self, email: str, role: Role, now: float) -> int:
        return self._change_user(email, now, role=role.value)

    def set_password(self, email: str, password: str, now: float) -> int:
        check_password(password)
        return self._change_user(email, now, password_hash=_hasher.hash(password))

    def change_own_password(
        self, user_id: int, current: str, new: str, now: float, keep: str
    ) -> int | None:
        """The user's own change, proved by the current password: the new hash and every
        session of theirs but `keep` ended, in one transaction. None if `current` is wrong (or
        the account is disabled, or its password changed meanwhile: nothing is written)."""
        check_password(new)
        users = t.users
        with self.engine.connect() as conn:
            row = conn.execute(
                select(users.c.password_hash, users.c.disabled).where(users.c.id == user_id)
            ).first()
        try:
            if row is None or row.disabled:
                _hasher.verify(dummy_hash(), current)
                return None
            _hasher.verify(row.password_hash, current)
        except (VerificationError, InvalidHashError):
            return None
        with self.engine.begin() as conn:
            # Only over the hash just verified: a change made meanwhile (the CLI, another tab)
            # is not overwritten by a password proved against the old one.
            changed = conn.execute(
                update(users)
                .where(users.c.id == user_id, users.c.password_hash == row.password_hash)
                .values(password_hash=_hasher.hash(new))
            ).rowcount
            if not changed:
                return None
            return _revoke_sessions(conn, user_id, now, keep)

    def list_users(self, now: float, lifetime_s: float, idle_s: float) -> list[dict[str, Any]]:
        """Every account, by email: role, disabled, created and last login, and how many of its
        sessions still count (as session_alive decides)."""
        u, s = t.users, t.sessions
        live = (
            select(func.count())
            .select_from(s)
            .where(
                s.c.user_id == u.c.id,
                s.c.revoked_at.is_(None),
                s.c.created_at > now - lifetime_s,
                s.c.last_seen_at > now - idle_s,
            )
            .scalar_subquery()
        )
        query = select(
            u.c.id,
            u.c.email,
            u.c.role,
            u.c.disabled,
            u.c.created_at,
            u.c.last_login_at,
            live.label("sessions"),
        ).order_by(u.c.email)
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def get_user(self, user_id: int) -> Principal | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.users).where(t.users.c.id == user_id)).mappings().first()
        if row is None or row["disabled"]:
            return None
        return Principal(row["email"], Role(row["role"]), user_id=row["id"])

    def create_token(self, name: str, role: Role, created_by: str | None = None) -> str:
        name = check_token_name(name)
        token, digest, prefix = new_token()
        with self.engine.begin() as conn:
            conn.execute(
                insert(t.api_tokens).values(
                    name=name,
                    token_hash=digest,
                    prefix=prefix,
                    role=role.value,
                    created_at=time.time(),
                    created_by=created_by,
                )
            )
        return token

    def verify_token(self, token: str) -> Principal | None:
        digest = hash_token(token)
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    select(t.api_tokens).where(
                        t.api_tokens.c.token_hash == digest, t.api_tokens.c.revoked_at.is_(None)
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            return None
        return Principal(f"token:{row['name']}", Role(row["role"]), token_id=row["id"])

    def list_tokens(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [
                {
                    k: r[k]
                    for k in (
                        "id",
                        "name",
                        "prefix",
                        "role",
                        "created_at",
                        "created_by",
                        "revoked_at",
                    )
                }
                for r in conn.execute(select(t.api_tokens).order_by(t.api_tokens.c.id)).mappings()
            ]

    def revoke_token(self, token_id: int) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(
                update(t.api_tokens)
                .where(t.api_tokens.c.id == token_id, t.api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            ).rowcount
        if not done:
            raise NotFound("no active token with this id", "id")

    def audit(
        self,
        actor: str | None,
        action: str,
        target: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(t.audit_log).values(
                    at=time.time(),
                    actor=actor,
                    action=action,
                    target=target,
                    detail=json.dumps(detail or {}, sort_keys=True),
                )
            )

    def audit_refusal(
        self, actor: str | None, action: str, address: str | None, now: float
    ) -> None:
        """Count a refused attempt in its (action, address, window) summary row."""
        key = address_key(address)
        window = refusal_window(now)
        values = {
            "at": now,
            "actor": actor,
            "action": action,
            "target": key,
            "detail": json.dumps({"ip": key, "window_start": float(window)}, sort_keys=True),
            "count": 1,
            "last_at": now,
            "summary_key": f"{action}|{key}|{window}"[:200],
        }
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(t.audit_log).values(**values)
        log = t.audit_log
        # One actor if every attempt typed the same email, else a marker: typed emails are
        # the attacker's choice and must not multiply rows.
        stmt = stmt.on_conflict_do_update(
            index_elements=[log.c.summary_key],
            set_={
                "count": log.c.count + 1,
                "last_at": stmt.excluded.last_at,
                "actor": case(
                    (log.c.actor.is_not_distinct_from(stmt.excluded.actor), log.c.actor),
                    else_=SEVERAL_ACTORS,
                ),
            },
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def audit_entries(
        self,
        limit: int = 200,
        *,
        before_id: int | None = None,
        actor: str | None = None,
        action: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first; filters narrow by exact actor, action (or "login.*" prefix) and time."""
        log = t.audit_log
        query = select(log).order_by(log.c.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(log.c.id < before_id)
        if actor:
            query = query.where(func.lower(log.c.actor) == actor.strip().lower())
        if action:
            if action.endswith("*"):
                query = query.where(log.c.action.startswith(action[:-1], autoescape=True))
            else:
                query = query.where(log.c.action == action)
        if since is not None:
            query = query.where(log.c.at >= since)
        if until is not None:
            query = query.where(log.c.at < until)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def audit_actions(self) -> list[str]:
        with self.engine.connect() as conn:
            return sorted(
                str(a) for a in conn.execute(select(t.audit_log.c.action).distinct()).scalars()
            )
