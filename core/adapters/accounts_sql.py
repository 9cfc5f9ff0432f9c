"""Users, API tokens and the audit log in SQL; passwords hashed with Argon2id."""

from __future__ import annotations

import json
import time
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from core.accounts import (
    Principal,
    Role,
    check_email,
    check_password,
    check_token_name,
    hash_token,
    new_token,
)
from core.adapters import tables as t
from core.errors import Conflict, NotFound

_hasher = PasswordHasher()
# Verifying against a dummy hash keeps "no such user" as slow as "wrong password".
_DUMMY_HASH = _hasher.hash("not-a-real-password-used-for-timing")


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
                _hasher.verify(_DUMMY_HASH, password)
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

    def audit_entries(self, limit: int = 200) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [
                dict(r)
                for r in conn.execute(
                    select(t.audit_log).order_by(t.audit_log.c.id.desc()).limit(limit)
                ).mappings()
            ]
