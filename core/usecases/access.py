"""The Access use cases: logins, API tokens and newsroom accounts, each with its audit row."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from core.accounts import (
    MIN_PASSWORD,
    Principal,
    Role,
    check_email,
    hash_token,
    issued_password,
    parse_role,
)
from core.errors import NotFound, ValidationError
from core.ports import AuditLog

CLI_ACTOR = "cli"


class OwnAccount(ValidationError):
    """An admin's change to their own account from the Team page (it could lock them out)."""

    status = 403
    code = "own_account"


class WrongPassword(ValidationError):
    """The current password typed to prove a change is wrong (counted like a refused login)."""

    status = 403
    code = "wrong_password"


class AccountStore(AuditLog, Protocol):
    """Newsroom accounts, sessions and tokens; writes its own audit rows (AuditLog)."""

    def authenticate(self, email: str, password: str) -> Principal | None: ...
    def create_user(self, email: str, password: str, role: Role) -> int: ...
    def set_disabled(self, email: str, disabled: bool, now: float) -> int: ...
    def set_role(self, email: str, role: Role, now: float) -> int: ...
    def set_password(self, email: str, password: str, now: float) -> int: ...
    def end_user_sessions(self, user_id: int, now: float, keep: str | None = None) -> int: ...
    def end_session_of(self, user_id: int, handle: str, now: float) -> str | None: ...
    def change_own_password(
        self, user_id: int, current: str, new: str, now: float, keep: str
    ) -> int | None: ...
    def create_token(self, name: str, role: Role, created_by: str | None = None) -> str: ...
    def revoke_token(self, token_id: int) -> None: ...
    def audit_refusal(
        self, actor: str | None, action: str, address: str | None, now: float
    ) -> None: ...


class Access:
    """Who may get in, and every change to who may: one audit row per action."""

    def __init__(self, accounts: AccountStore, clock: Callable[[], float] = time.time) -> None:
        self.accounts = accounts
        self.clock = clock

    # -- the newsroom's login -----------------------------------------------------------------
    def login(self, email: str, password: str, address: str | None) -> Principal | None:
        """The principal, or None (a refused attempt is counted in its summary row)."""
        principal = self.accounts.authenticate(email, password) if email and password else None
        if principal is None:
            self.accounts.audit_refusal(email or None, "login.failed", address, self.clock())
            return None
        self.accounts.audit(principal.name, "login", None, {"ip": address})
        return principal

    def login_rate_limited(self, email: str | None, address: str | None) -> None:
        self.accounts.audit_refusal(email, "login.rate_limited", address, self.clock())

    def logout(self, principal: Principal) -> None:
        self.accounts.audit(principal.name, "logout")

    def sign_out_elsewhere(self, principal: Principal, session_id: str, address: str | None) -> int:
        """A lost phone: every other session of this user ends, the one asking (session_id)
        stays. Returns how many ended."""
        if principal.user_id is None:
            raise ValidationError("only a newsroom login has devices to sign out", "session")
        ended = self.accounts.end_user_sessions(principal.user_id, self.clock(), keep=session_id)
        detail = {"sessions_ended": ended, "ip": address}
        self.accounts.audit(principal.name, "user.sign_out_others", _key(principal.name), detail)
        return ended

    def sign_out_device(
        self, principal: Principal, session_id: str, handle: str, address: str | None
    ) -> str:
        """One other device of this user signed out by its handle (the account page's list);
        returns its device words. This browser's own handle is refused (that is Log out), and a
        handle that is not a live session of this user ends nothing (NotFound)."""
        if principal.user_id is None:
            raise ValidationError("only a newsroom login has devices to sign out", "session")
        if handle == hash_token(session_id):
            raise ValidationError("this is the device you are using: log out instead", "device")
        device = self.accounts.end_session_of(principal.user_id, handle, self.clock())
        if device is None:
            raise NotFound("no such device signed in as you", "device")
        detail = {"device": device, "ip": address}
        self.accounts.audit(principal.name, "user.sign_out_device", _key(principal.name), detail)
        return device

    def change_own_password(
        self,
        principal: Principal,
        session_id: str,
        current: str,
        new: str,
        repeat: str,
        address: str | None,
    ) -> int:
        """A newsroom user's own new password, proved by the current one (a borrowed or stolen
        session alone cannot lock its owner out). Every other session ends; the one asking
        stays. Returns how many ended. ValidationError names the field at fault; a wrong
        current password raises WrongPassword and is counted like a refused login."""
        if principal.user_id is None:
            raise ValidationError("only a newsroom login has a password to change", "session")
        if not current:
            raise ValidationError("type your current password", "current_password")
        if new != repeat:
            raise ValidationError("the two new passwords differ", "new_password_repeat")
        if len(new) < MIN_PASSWORD:
            raise ValidationError(
                f"the new password must be at least {MIN_PASSWORD} characters", "new_password"
            )
        if new == current:
            raise ValidationError("the new password is the one you have now", "new_password")
        ended = self.accounts.change_own_password(
            principal.user_id, current, new, self.clock(), keep=session_id
        )
        if ended is None:
            self.accounts.audit_refusal(principal.name, "password.failed", address, self.clock())
            raise WrongPassword("the current password is wrong", "current_password")
        detail = {"sessions_ended": ended, "ip": address, "own": True}
        self.accounts.audit(principal.name, "user.password", _key(principal.name), detail)
        return ended

    def password_change_rate_limited(self, principal: Principal, address: str | None) -> None:
        self.accounts.audit_refusal(principal.name, "password.rate_limited", address, self.clock())

    # -- API tokens ----------------------------------------------------------------------------
    def create_token(self, name: str, role_name: str, actor: str = CLI_ACTOR) -> tuple[str, Role]:
        """A new token (shown once) and its role."""
        role = parse_role(role_name)
        token = self.accounts.create_token(name, role, created_by=actor)
        self.accounts.audit(actor, "token.create", name, {"role": role.value})
        return token, role

    def revoke_token(self, token_id: int, actor: str = CLI_ACTOR) -> None:
        self.accounts.revoke_token(token_id)
        self.accounts.audit(actor, "token.revoke", str(token_id))

    # -- newsroom accounts: every change that affects access ends the user's sessions ----------
    def create_user(
        self, email: str, password: str, role_name: str, actor: str = CLI_ACTOR
    ) -> tuple[int, Role]:
        role = parse_role(role_name)
        user_id = self.accounts.create_user(email, password, role)
        self.accounts.audit(actor, "user.create", _key(email), {"role": role.value})
        return user_id, role

    def set_disabled(self, email: str, disabled: bool, actor: str = CLI_ACTOR) -> int:
        ended = self.accounts.set_disabled(email, disabled, self.clock())
        action = "user.disable" if disabled else "user.enable"
        self.accounts.audit(actor, action, _key(email), {"sessions_ended": ended})
        return ended

    def set_role(self, email: str, role_name: str, actor: str = CLI_ACTOR) -> tuple[Role, int]:
        role = parse_role(role_name)
        ended = self.accounts.set_role(email, role, self.clock())
        detail = {"role": role.value, "sessions_ended": ended}
        self.accounts.audit(actor, "user.role", _key(email), detail)
        return role, ended

    def set_password(self, email: str, password: str, actor: str = CLI_ACTOR) -> int:
        ended = self.accounts.set_password(email, password, self.clock())
        self.accounts.audit(actor, "user.password", _key(email), {"sessions_ended": ended})
        return ended

    # -- the Team page: an admin manages the other accounts -----------------------------------
    # The same changes as the CLI's, by the admin's name. An admin never changes their own
    # account here (role, disabling, a new password): with that rule the acting admin always
    # stays, so the newsroom cannot lose its last admin from a browser. Their own password is
    # changed on their account page; the CLI can change anyone.
    def add_person(self, admin: Principal, email: str, role_name: str) -> tuple[str, str]:
        """A new account and its issued password (shown to the admin once, never stored)."""
        email = check_email(email)
        password = issued_password()
        self.create_user(email, password, role_name, actor=admin.name)
        return email, password

    def set_person_role(self, admin: Principal, email: str, role_name: str) -> tuple[Role, int]:
        _not_own(admin, email, "your own role")
        return self.set_role(email, role_name, actor=admin.name)

    def set_person_disabled(self, admin: Principal, email: str, disabled: bool) -> int:
        _not_own(admin, email, "your own account's access")
        return self.set_disabled(email, disabled, actor=admin.name)

    def issue_password(self, admin: Principal, email: str) -> tuple[str, int]:
        """A new issued password for someone who forgot theirs; every session of theirs ends."""
        _not_own(admin, email, "your own password here (use Your account)")
        password = issued_password()
        return password, self.set_password(email, password, actor=admin.name)


def _not_own(admin: Principal, email: str, what: str) -> None:
    if _key(email) == _key(admin.name):
        raise OwnAccount(f"you cannot change {what}; another admin or the CLI can", "email")


def _key(email: str) -> str:
    return email.strip().lower()
