"""Users and their sign-in state: built-in accounts' argon2id hashes (never a password),
sign-in sessions (only a token's SHA-256) and failed attempts for throttling. They belong to no
workspace: ``corpusmap.accounts`` and the operator's CLI use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from storage.access import unscoped
from storage.errors import NotFoundError, StorageError
from storage.models import AuthSessionRow, SignInAttemptRow, UserRow, utcnow
from storage.session import StoreBase


@dataclass(frozen=True)
class UserInfo:
    id: int
    username: str
    display_name: str
    has_password: bool
    disabled: bool
    created_at: datetime
    last_sign_in_at: datetime | None


def _user(row: UserRow) -> UserInfo:
    return UserInfo(
        row.id,
        row.username,
        row.display_name,
        row.password_hash is not None,
        row.disabled,
        row.created_at,
        row.last_sign_in_at,
    )


def user_id_of(session: Session, username: str) -> int | None:
    """The id of the user named ``username``, or None."""
    return session.scalar(select(UserRow.id).where(UserRow.username == username))


class UserStore(StoreBase):
    """``Store``'s methods for users, sessions and sign-in attempts."""

    # --- users ---------------------------------------------------------------------------

    @unscoped
    def add_user(
        self, username: str, *, display_name: str = "", password_hash: str | None = None
    ) -> UserInfo:
        username = username.strip()
        if not username:
            raise StorageError("a user needs a name")
        with self._tx() as session:
            if user_id_of(session, username) is not None:
                raise StorageError(f"user {username!r} exists already")
            row = UserRow(username=username, display_name=display_name, password_hash=password_hash)
            session.add(row)
            session.flush()
            self._audit(session, "user", "user", row.id, server_wide=True, username=username)
            return _user(row)

    @unscoped
    def get_user(self, username: str) -> UserInfo | None:
        with self._tx() as session:
            row = session.scalars(select(UserRow).where(UserRow.username == username)).first()
            return _user(row) if row else None

    @unscoped
    def list_users(self) -> list[UserInfo]:
        with self._tx() as session:
            return [_user(r) for r in session.scalars(select(UserRow).order_by(UserRow.id))]

    @unscoped
    def password_hash(self, username: str) -> str | None:
        """The stored argon2id hash (only ``corpusmap.accounts`` reads it)."""
        with self._tx() as session:
            return session.scalar(select(UserRow.password_hash).where(UserRow.username == username))

    @unscoped
    def update_user(
        self,
        username: str,
        *,
        password_hash: str | None = None,
        disabled: bool | None = None,
        signed_in: bool = False,
    ) -> UserInfo:
        """Change a user's hash or state; disabling one also ends their sessions."""
        with self._tx() as session:
            row = session.scalars(select(UserRow).where(UserRow.username == username)).first()
            if row is None:
                raise NotFoundError(f"no user {username!r}; `corpusmap users list` lists them")
            if password_hash is not None:
                row.password_hash = password_hash
            if disabled is not None:
                row.disabled = disabled
            if signed_in:
                row.last_sign_in_at = utcnow()
            if disabled or password_hash is not None:
                session.execute(delete(AuthSessionRow).where(AuthSessionRow.user_id == row.id))
            return _user(row)

    # --- sign-in sessions and attempts ----------------------------------------------------

    @unscoped
    def add_auth_session(self, token_hash: str, username: str, expires_at: datetime) -> None:
        with self._tx() as session:
            user_id = user_id_of(session, username)
            if user_id is None:
                raise NotFoundError(f"no user {username!r}")
            session.add(
                AuthSessionRow(token_hash=token_hash, user_id=user_id, expires_at=expires_at)
            )

    @unscoped
    def session_user(self, token_hash: str) -> UserInfo | None:
        """The enabled user of an unexpired session; an expired session is removed."""
        with self._tx() as session:
            row = session.get(AuthSessionRow, token_hash)
            if row is None:
                return None
            if row.expires_at <= utcnow():
                session.delete(row)
                return None
            user = session.get(UserRow, row.user_id)
            return _user(user) if user is not None and not user.disabled else None

    @unscoped
    def end_auth_session(self, token_hash: str) -> None:
        with self._tx() as session:
            session.execute(delete(AuthSessionRow).where(AuthSessionRow.token_hash == token_hash))

    @unscoped
    def add_failed_sign_in(self, keys: list[str]) -> None:
        with self._tx() as session:
            for key in keys:
                session.add(SignInAttemptRow(key=key[:400]))

    @unscoped
    def failed_sign_ins(self, key: str, window: timedelta) -> int:
        """Failed attempts under ``key`` within the last ``window``."""
        since = utcnow() - window
        with self._tx() as session:
            session.execute(delete(SignInAttemptRow).where(SignInAttemptRow.at < since - window))
            return int(
                session.scalar(
                    select(func.count()).where(
                        SignInAttemptRow.key == key[:400], SignInAttemptRow.at >= since
                    )
                )
                or 0
            )

    @unscoped
    def clear_failed_sign_ins(self, key: str) -> None:
        with self._tx() as session:
            session.execute(delete(SignInAttemptRow).where(SignInAttemptRow.key == key[:400]))
