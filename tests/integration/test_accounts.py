"""Built-in accounts (issue 17), on a real SQLite file: argon2id hashes, throttled failures,
sessions that expire or end, identity-provider users, and a password that never lands anywhere."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from corpusmap import accounts
from corpusmap.accounts import SignInError, ThrottledError, WeakPasswordError
from storage import Store

PASSWORD = "Tr0ub4dor-and-3-horses"
"""Distinctive enough that finding it anywhere is a leak, not a coincidence."""
SAME_MESSAGE = "wrong user name or password"


@pytest.fixture
def store(tmp_path: Path):
    s = Store.open(str(tmp_path / "accounts.db"))
    s.add_user("ana", display_name="Ana", password_hash=accounts.hash_password(PASSWORD))
    s.claim_default_workspace("ana")
    yield s
    s.close()


def sign_in(store: Store, username: str, password: str, client: str = "10.0.0.1") -> str:
    return accounts.sign_in(store, username, password, client=client, session_hours=1)


def test_the_right_password_signs_in_and_a_wrong_one_is_refused(store):
    with pytest.raises(SignInError) as wrong:
        sign_in(store, "ana", PASSWORD + "x")
    assert str(wrong.value) == SAME_MESSAGE and not isinstance(wrong.value, ThrottledError)
    token = sign_in(store, "ana", PASSWORD)
    user = accounts.user_for_token(store, token)
    assert user is not None and user.username == "ana" and user.last_sign_in_at is not None
    assert accounts.user_for_token(store, token + "x") is None
    assert (
        accounts.user_for_token(store, None) is None and accounts.user_for_token(store, "") is None
    )


def test_an_unknown_user_and_a_disabled_one_get_the_same_sentence(store):
    with pytest.raises(SignInError) as unknown:
        sign_in(store, "nobody", PASSWORD)
    store.update_user("ana", disabled=True)
    with pytest.raises(SignInError) as disabled:
        sign_in(store, "ana", PASSWORD)
    assert str(unknown.value) == str(disabled.value) == SAME_MESSAGE


def test_an_unknown_user_takes_about_as_long_as_a_known_one(store):
    """A dummy argon2 hash is checked for unknown names: a missing one would answer in ~1 ms."""

    def fastest(username: str) -> float:
        times = []
        for n in range(3):
            start = time.perf_counter()
            with pytest.raises(SignInError):
                sign_in(store, username, "not-the-password", client=f"10.1.0.{n}")
            times.append(time.perf_counter() - start)
            store.clear_failed_sign_ins(f"user:{username}")
        return min(times)

    known, unknown = fastest("ana"), fastest("nobody")
    assert unknown > 0.3 * known, (known, unknown)


def test_the_sixth_fast_attempt_is_throttled_even_with_the_right_password(store):
    for _ in range(accounts.MAX_FAILURES):
        with pytest.raises(SignInError) as err:
            sign_in(store, "ana", "guess-guess")
        assert not isinstance(err.value, ThrottledError)
    with pytest.raises(ThrottledError, match="too many failed sign-ins.*try again in 15 minutes"):
        sign_in(store, "ana", PASSWORD, client="10.9.9.9")  # another address: the account counts
    with pytest.raises(ThrottledError):  # still: throttled attempts do not clear the failures
        sign_in(store, "ana", PASSWORD)


def test_a_success_clears_the_accounts_failures(store):
    for _ in range(2):
        for _ in range(accounts.MAX_FAILURES - 1):
            with pytest.raises(SignInError):
                sign_in(store, "ana", "guess-guess")
        assert sign_in(store, "ana", PASSWORD)  # 4 + 4 failures, never throttled


def test_one_address_is_throttled_over_every_account_it_tries(store):
    store.add_user("bob", password_hash=accounts.hash_password("bobs-password"))
    for n in range(accounts.MAX_CLIENT_FAILURES):
        with pytest.raises(SignInError) as err:  # a spray: a few guesses at each of many names
            sign_in(store, f"user{n % 5}", "guess-guess", client="203.0.113.7")
        assert not isinstance(err.value, ThrottledError)
    with pytest.raises(ThrottledError):
        sign_in(store, "ana", PASSWORD, client="203.0.113.7")
    with pytest.raises(ThrottledError):
        sign_in(store, "bob", "bobs-password", client="203.0.113.7")
    assert sign_in(store, "ana", PASSWORD, client="198.51.100.2")  # another address is not


def test_an_expired_session_must_sign_in_again(store):
    token = accounts.sign_in(store, "ana", PASSWORD, client="10.0.0.1", session_hours=1 / 3600)
    assert accounts.user_for_token(store, token) is not None
    time.sleep(1.2)
    assert accounts.user_for_token(store, token) is None
    fresh = accounts.sign_in(store, "ana", PASSWORD, client="10.0.0.1", session_hours=1)
    assert accounts.user_for_token(store, fresh) is not None


def test_disabling_a_user_ends_their_session_and_enabling_does_not_revive_it(store):
    token = sign_in(store, "ana", PASSWORD)
    store.update_user("ana", disabled=True)
    assert accounts.user_for_token(store, token) is None
    store.update_user("ana", disabled=False)
    assert accounts.user_for_token(store, token) is None
    assert accounts.user_for_token(store, sign_in(store, "ana", PASSWORD)) is not None


def test_a_new_password_ends_the_sessions_and_sign_out_ends_one(store):
    first, second = sign_in(store, "ana", PASSWORD), sign_in(store, "ana", PASSWORD)
    accounts.sign_out(store, first)
    assert accounts.user_for_token(store, first) is None
    assert accounts.user_for_token(store, second) is not None
    store.update_user("ana", password_hash=accounts.hash_password("another-password"))
    assert accounts.user_for_token(store, second) is None
    with pytest.raises(SignInError):
        sign_in(store, "ana", PASSWORD)


def test_a_short_password_is_refused_without_repeating_it():
    with pytest.raises(WeakPasswordError, match="at least 8 characters") as err:
        accounts.hash_password("s3cr3t!")
    assert "s3cr3t!" not in str(err.value)
    assert accounts.hash_password("eight-ch").startswith("$argon2id$")


def test_a_hash_with_outdated_parameters_is_replaced_at_sign_in(store):
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    store.update_user("ana", password_hash=weak)
    assert sign_in(store, "ana", PASSWORD)
    renewed = store.password_hash("ana")
    assert renewed != weak and not PasswordHasher().check_needs_rehash(renewed)


def test_sign_ins_are_in_the_trail_of_each_workspace_of_the_user(store):
    store.create_workspace("support")
    store.set_member("ana", "admin", workspace="support")
    token = sign_in(store, "ana", PASSWORD)
    accounts.sign_out(store, token)
    for access in store.workspaces_of("ana"):
        events = store.scoped(access).audit_events()
        assert [e.action for e in events[:2]] == ["sign-out", "sign-in"], access.workspace
        assert events[1].actor == "ana" and events[1].detail["client"] == "10.0.0.1"


def test_identity_provider_users_are_created_without_a_password_once(store):
    user = accounts.identity_user(store, "  eve@example.org ", "Eve")
    assert (user.username, user.display_name, user.has_password) == (
        "eve@example.org",
        "Eve",
        False,
    )
    assert accounts.identity_user(store, "eve@example.org").id == user.id
    assert store.get_user("eve@example.org").last_sign_in_at is not None
    with pytest.raises(SignInError, match=SAME_MESSAGE):  # no password: no built-in sign-in
        sign_in(store, "eve@example.org", "")
    store.update_user("eve@example.org", disabled=True)
    with pytest.raises(SignInError, match="disabled"):
        accounts.identity_user(store, "eve@example.org")
    with pytest.raises(SignInError):
        accounts.identity_user(store, " ")


def text_cells(db_file: Path) -> list[str]:
    """Every text and blob value of every table of the database."""
    cells = []
    with sqlite3.connect(db_file) as connection:
        tables = [
            r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        ]
        for table in tables:
            for row in connection.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    if isinstance(value, bytes):
                        cells.append(value.decode("utf-8", "replace"))
                    elif isinstance(value, str):
                        cells.append(value)
    return cells


def test_the_password_and_tokens_are_never_stored_or_logged(store, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SignInError):
        sign_in(store, "ana", PASSWORD + "!")
    token = sign_in(store, "ana", PASSWORD)
    accounts.sign_out(store, sign_in(store, "ana", PASSWORD))
    cells = text_cells(tmp_path / "accounts.db")
    assert any(c.startswith("$argon2id$") for c in cells)
    assert len(cells) > 20  # the scan sees the tables
    leaks = [c for c in cells if PASSWORD in c or token in c]
    assert not leaks, leaks
    assert any(accounts.token_hash(token) == c for c in cells)
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "signed in" in logged and "failed sign-in" in logged  # the capture sees accounts
    assert PASSWORD not in logged and token not in logged


def test_an_identity_provider_e_mail_is_one_user_whatever_its_case(tmp_path: Path) -> None:
    """The operator adds ``Eve@Example.org --oidc``; the provider later sends ``eve@example.org``:
    the same user (with the operator's workspace), not a second one with none."""
    from click.testing import CliRunner

    from corpusmap.cli import main

    db = str(tmp_path / "team.db")
    result = CliRunner().invoke(main, ["users", "add", "Eve@Example.org", "--oidc", "--db", db])
    assert result.exit_code == 0, result.output
    store = Store.open(db)
    store.create_workspace("W")
    store.set_member("eve@example.org", "editor", workspace="W")
    user = accounts.identity_user(store, "eve@EXAMPLE.org ")
    assert user.username == "eve@example.org"
    assert [u.username for u in store.list_users()] == ["eve@example.org"]
    assert [a.workspace for a in store.workspaces_of(user.username)] == ["W"]
    store.close()
