"""Built-in accounts for team mode (issue 17): argon2id password hashes, sign-in sessions that
expire, and throttled failures; and the users an identity provider signs in.

A sign-in reads as its story: refuse at once if the account or the client address failed too
often lately (before the password is even checked, so a throttled guesser learns nothing), check
the password against the stored argon2id hash (against a dummy hash for an unknown user, so the
time taken does not tell which names exist), record a failure under both keys or clear the
account's failures, and hand back a random token of which the database keeps only the SHA-256.

The password itself is never stored, logged, or put into an error message.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from corpusmap.errors import CorpusmapError
from storage import StorageError, Store
from storage.models import utcnow
from storage.users import UserInfo

__all__ = [
    "MAX_CLIENT_FAILURES",
    "MAX_FAILURES",
    "MIN_PASSWORD_CHARS",
    "WINDOW",
    "SignInError",
    "ThrottledError",
    "WeakPasswordError",
    "hash_password",
    "identity_user",
    "sign_in",
    "sign_out",
    "user_for_token",
]

log = logging.getLogger(__name__)

MAX_FAILURES = 5
"""Failed sign-ins one account may have within ``WINDOW``; the next attempt is refused."""
MAX_CLIENT_FAILURES = 20
"""Failed sign-ins one client address may have within ``WINDOW``, over every account it tries
(one guesser spraying a common password over many names)."""
WINDOW = timedelta(minutes=15)
MIN_PASSWORD_CHARS = 8
"""NIST SP 800-63B's floor for a password the user chooses."""
TOKEN_BYTES = 32
"""256 random bits: a session token cannot be guessed, so only its SHA-256 need be stored."""
UNKNOWN_CLIENT = "unknown"
"""The client key when the server cannot tell the address: throttled together, not exempt."""

_hasher = PasswordHasher()  # argon2id with argon2-cffi's RFC 9106 low-memory profile


class SignInError(CorpusmapError):
    """Wrong user name or password, or a disabled account: one sentence for all, so a guesser
    cannot tell which names exist."""

    def __init__(self, message: str = "wrong user name or password") -> None:
        super().__init__(message)


class ThrottledError(SignInError):
    """Too many failed sign-ins for the account or from the client address lately."""

    def __init__(self, minutes: int) -> None:
        super().__init__(
            "too many failed sign-ins for this account or from this address: "
            f"try again in {minutes} minutes"
        )


class WeakPasswordError(CorpusmapError):
    """A password too short to be accepted."""


def hash_password(password: str) -> str:
    """The argon2id hash to store for ``password`` (refused under ``MIN_PASSWORD_CHARS``)."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise WeakPasswordError(
            f"a password needs at least {MIN_PASSWORD_CHARS} characters; a passphrase of a few "
            "words is easier to remember and harder to guess"
        )
    return _hasher.hash(password)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash to check unknown users' passwords against, so they take as long as known ones."""
    return _hasher.hash(secrets.token_urlsafe(16))


def _verify(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _dummy_hash(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def token_hash(token: str) -> str:
    """What the database keeps of a session token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def sign_in(
    store: Store, username: str, password: str, *, client: str, session_hours: float
) -> str:
    """A new session token for ``username`` if ``password`` is theirs (``SignInError`` if not,
    ``ThrottledError`` if the account or ``client`` failed too often within ``WINDOW``)."""
    if session_hours <= 0:
        raise CorpusmapError("session_hours must be above 0")
    name = username.strip()
    user_key = f"user:{name}"
    client_key = f"client:{client.strip() or UNKNOWN_CLIENT}"
    # A throttled attempt is refused before the password is checked, and is not counted: the
    # account unlocks WINDOW after its failures, however hard a guesser keeps knocking.
    if (
        store.failed_sign_ins(user_key, WINDOW) >= MAX_FAILURES
        or store.failed_sign_ins(client_key, WINDOW) >= MAX_CLIENT_FAILURES
    ):
        log.warning("sign-in throttled for %r from %s", name, client_key)
        raise ThrottledError(int(WINDOW.total_seconds() // 60))
    user = store.get_user(name) if name else None
    stored = store.password_hash(name) if user is not None else None
    matches = _verify(stored, password)  # always runs argon2, even for an unknown name
    if user is None or user.disabled or not matches:
        store.add_failed_sign_in([user_key, client_key])
        log.info("failed sign-in for %r from %s", name, client_key)
        raise SignInError()
    assert stored is not None
    store.clear_failed_sign_ins(user_key)
    if _hasher.check_needs_rehash(stored):
        # Only after argon2's parameters change; storing a new hash also ends the user's other
        # sessions (UserStore.update_user), a rare and harmless sign-out.
        store.update_user(name, password_hash=_hasher.hash(password))
    token = secrets.token_urlsafe(TOKEN_BYTES)
    store.add_auth_session(token_hash(token), name, utcnow() + timedelta(hours=session_hours))
    store.update_user(name, signed_in=True)
    _audit_sign_in(store, name, user.id, "builtin", client=client_key.removeprefix("client:"))
    log.info("%r signed in from %s", name, client_key)
    return token


def user_for_token(store: Store, token: str | None) -> UserInfo | None:
    """The enabled user a session token belongs to; None if absent, unknown or expired."""
    if not token:
        return None
    return store.session_user(token_hash(token))


def sign_out(store: Store, token: str) -> None:
    """End the session ``token`` belongs to (nothing happens for an unknown one)."""
    user = user_for_token(store, token)
    store.end_auth_session(token_hash(token))
    if user is not None:
        _audit_sign_in(store, user.username, user.id, "builtin", action="sign-out")


def identity_name(username: str) -> str:
    """How an identity-provider user is stored: trimmed, an e-mail in lower case."""
    name = username.strip()
    return name.lower() if "@" in name else name


def identity_user(store: Store, username: str, display_name: str = "") -> UserInfo:
    """The user an identity provider (OpenID Connect) signed in: created without a password on
    their first sign-in; a disabled one is refused. An e-mail is matched in lower case (the
    operator's ``users add Eve@X.org --oidc`` and a provider's ``eve@x.org`` are one user)."""
    name = identity_name(username)
    if not name:
        raise SignInError("the identity provider named no user (no e-mail and no subject)")
    user = store.get_user(name)
    if user is None:
        try:
            user = store.add_user(name, display_name=display_name)
        except StorageError:  # a first sign-in in another tab or server process won the race
            user = store.get_user(name)
            if user is None:
                raise
    if user.disabled:
        raise SignInError(
            f"the account {name!r} is disabled: ask the server's operator to enable it "
            "(`corpusmap users enable`)"
        )
    user = store.update_user(name, signed_in=True)
    _audit_sign_in(store, name, user.id, "oidc")
    return user


def _audit_sign_in(
    store: Store, username: str, user_id: int, way: str, action: str = "sign-in", **detail: str
) -> None:
    """One line in each workspace the user belongs to, as that user, for its admins to read."""
    for access in store.workspaces_of(username):
        store.scoped(access).record_audit(action, "user", user_id, way=way, **detail)
