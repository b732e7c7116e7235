"""Team mode in the real app (AppTest, built-in accounts): nothing renders before a sign-in, a
wrong password is refused and never shown, an expired session signs in again, roles hide the
buttons they cannot use and the scoped store refuses a forced call, a link to another
workspace's run is "not found" like a missing one; single-user mode has no sign-in at all."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit import config
from streamlit.testing.v1 import AppTest

from corpusmap import accounts, workspace
from storage import Store
from tests.ui.conftest import REPO, TIMEOUT, assert_clean, click, open_app, widget
from tests.ui.team_data import (
    ALICE,
    ALICE_CORPUS,
    BOB,
    BOB_CORPUS,
    CAROL,
    DAVE,
    ERIN,
    PASSWORD,
    SECRET,
    WRITE_BUTTONS,
    TeamData,
    build_team_db,
)
from ui import keys


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> TeamData:
    return build_team_db(tmp_path_factory.mktemp("team_app"), passwords=True)


@pytest.fixture
def team_env(team: TeamData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TeamData:
    monkeypatch.setenv("CORPUSMAP_DATABASE_URL", team.url)
    monkeypatch.setenv("CORPUSMAP_HOME", str(tmp_path))
    monkeypatch.setenv("CORPUSMAP_TEAM", "1")
    monkeypatch.setenv("CORPUSMAP_SIGN_IN", "builtin")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return team


def page_text(at: AppTest) -> str:
    """Every element of the page as its message to the browser: labels, values, texts."""
    parts: list[str] = []

    def walk(node) -> None:  # type: ignore[no-untyped-def]
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(parts)


def titles(at: AppTest) -> list[str]:
    return [t.value for t in at.title]


def buttons(at: AppTest) -> set[str]:
    return {b.label for b in at.button}


def frame_run(state: dict) -> AppTest:
    """A run of app.py (the frame, with the gate) for a session holding ``state``."""
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert_clean(at)
    return at


def sign_in(at: AppTest, username: str, password: str = PASSWORD) -> AppTest:
    widget(at.text_input, "Username").input(username)
    widget(at.text_input, "Password").input(password)
    return click(at, "Sign in")


def signed_in(username: str, page: str | None = None) -> AppTest:
    at = sign_in(open_app(), username)
    assert username in [t.value for t in at.sidebar.text], page_text(at)[:2000]
    if page is not None:
        at.switch_page(f"pages/{page}.py").run()
        assert_clean(at)
    return at


def test_single_user_mode_on_loopback_has_no_sign_in(app_db: Path) -> None:
    at = open_app()
    assert "Sign in" not in titles(at)
    assert titles(at)[0] == "Corpus"
    assert "Sign out" not in buttons(at)
    assert at.file_uploader, "the upload box is there, as before team mode"


def test_an_unsafe_server_is_refused_with_the_reason_and_nothing_else(
    app_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Single-user mode (no sign-in) listening beyond this machine, not asked for.
    address = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    try:
        at = open_app()
    finally:
        config.set_option("server.address", address)
    assert not titles(at) and not at.sidebar.selectbox and not at.button
    assert [e.value for e in at.error][0].startswith(
        "corpusmap is in single-user mode (no sign-in) and would listen on 0.0.0.0"
    )
    # Team mode with no way to sign in.
    monkeypatch.setenv("CORPUSMAP_TEAM", "1")
    at = open_app()
    assert not titles(at) and not at.button
    assert [e.value for e in at.error][0].startswith(
        "team mode is on but no way to sign in is configured"
    )


def test_nothing_renders_before_a_sign_in_and_a_wrong_password_is_refused(team_env) -> None:
    at = open_app()
    assert titles(at) == ["Sign in"]
    assert not at.sidebar.selectbox and not at.dataframe
    assert ALICE_CORPUS not in page_text(at)

    wrong = "Wrong-Password-4411!"
    sign_in(at, ALICE, wrong)
    assert titles(at) == ["Sign in"]
    assert [e.value for e in at.error] == ["wrong user name or password"]
    assert wrong not in page_text(at)  # nothing the server sends to the browser holds it

    sign_in(at, ALICE)
    assert titles(at) == ["Corpus"]
    assert PASSWORD not in page_text(at)
    sidebar = [c.value for c in at.sidebar.caption]
    assert "Admin in workspace A" in sidebar
    usage = next(c for c in sidebar if c.startswith("Storage"))
    assert usage.endswith("of 500 MB · LLM calls today 0 of 1,000"), usage
    assert "Sign out" in buttons(at)

    token = at.session_state[keys.AUTH_TOKEN]
    assert accounts.user_for_token(Store.open(team_env.url), token) is not None
    click(at, "Sign out")
    assert not titles(at), "the page stops: the session holds no access any more"
    assert keys.ACCESS not in at.session_state and keys.AUTH_TOKEN not in at.session_state
    assert accounts.user_for_token(Store.open(team_env.url), token) is None


def test_the_sixth_fast_attempt_is_throttled_even_with_the_right_password(team_env) -> None:
    store = Store.open(team_env.url)
    store.add_user("eve@example.com", password_hash=accounts.hash_password(PASSWORD))
    at = open_app()
    for attempt in range(5):
        sign_in(at, "eve@example.com", f"guess number {attempt}")
        assert [e.value for e in at.error] == ["wrong user name or password"]
    sign_in(at, "eve@example.com", PASSWORD)
    assert titles(at) == ["Sign in"]
    assert [e.value for e in at.error] == [
        "too many failed sign-ins for this account or from this address: try again in 15 minutes"
    ]


def test_an_expired_session_must_sign_in_again(team_env, monkeypatch) -> None:
    monkeypatch.setenv("CORPUSMAP_SESSION_HOURS", str(1.5 / 3600))  # 1.5 seconds
    at = sign_in(open_app(), BOB)
    assert titles(at) == ["Corpus"]
    token = at.session_state[keys.AUTH_TOKEN]
    # The frame's next run in this session (AppTest runs a page's reruns without the frame, as
    # the server never does; a fresh run of app.py with the session's token is what it does).
    again = frame_run({keys.AUTH_TOKEN: token})
    assert titles(again) == ["Corpus"], "still valid: the token is checked and accepted"
    time.sleep(2.0)
    again = frame_run({keys.AUTH_TOKEN: token})
    assert titles(again) == ["Sign in"]
    assert [i.value for i in again.info] == ["Your session has ended: sign in again."]
    assert BOB_CORPUS not in page_text(again)
    assert keys.AUTH_TOKEN not in again.session_state


def test_a_user_in_no_workspace_sees_only_that_they_must_be_added(team_env) -> None:
    at = sign_in(open_app(), DAVE)
    assert titles(at) == ["No workspace yet"]
    assert "ask an admin to add you" in at.info[0].value
    assert buttons(at) == {"Sign out"}
    assert not at.dataframe and not at.selectbox


def test_a_member_of_two_workspaces_picks_one_and_sees_only_its_data(team_env) -> None:
    store = Store.open(team_env.url)
    store.add_user("gina@example.com", password_hash=accounts.hash_password(PASSWORD))
    store.set_member("gina@example.com", "viewer", workspace="A")
    store.set_member("gina@example.com", "editor", workspace="B")
    at = signed_in("gina@example.com")
    picker = widget(at.sidebar.selectbox, "Workspace")
    assert picker.options == ["A", "B"] and picker.value == "A"
    assert "Viewer in workspace A" in [c.value for c in at.sidebar.caption]
    # The frame's next run after choosing B, with the choices made in A still in the session.
    token = at.session_state[keys.AUTH_TOKEN]
    again = frame_run(
        {
            keys.AUTH_TOKEN: token,
            keys.WORKSPACE: "B",
            keys.CORPUS_ID: team_env.alice_corpus,
            keys.RUN_ID: team_env.alice_run,
        }
    )
    assert "Editor in workspace B" in [c.value for c in again.sidebar.caption]
    corpus = widget(again.sidebar.selectbox, "Corpus")
    assert corpus.value == team_env.bob_corpus and corpus.options == [
        f"#{team_env.bob_corpus} {BOB_CORPUS}.jsonl (12 texts)"
    ]
    assert not [s for s in again.sidebar.selectbox if s.label == "Run"]
    assert SECRET not in page_text(again) and ALICE_CORPUS not in page_text(again)


def test_a_viewer_sees_no_upload_run_edit_or_delete_buttons(team_env) -> None:
    at = signed_in(CAROL)
    assert "Viewer in workspace A" in [c.value for c in at.sidebar.caption]
    assert not at.file_uploader
    for page in ("corpus", "run", "explore", "lens", "edit", "export", "history", "team"):
        at.switch_page(f"pages/{page}.py").run()
        assert_clean(at)
        shown = buttons(at) & set(WRITE_BUTTONS)
        assert not shown, f"{page}: {shown}"
        assert not at.file_uploader, page
    # Export stays: a viewer reads and exports.
    at.switch_page("pages/export.py").run()
    assert len(at.get("download_button")) >= 4
    at.switch_page("pages/team.py").run()
    assert "The workspace's admins read the audit trail." in [c.value for c in at.caption]


def test_an_editor_runs_but_does_not_delete(team_env) -> None:
    at = signed_in(ERIN)
    assert at.file_uploader, "an editor uploads"
    assert "Delete…" not in buttons(at)
    at.switch_page("pages/run.py").run()
    assert "Start run" in buttons(at)


def test_a_workspace_over_its_quota_cannot_start_a_run(team_env) -> None:
    """The limits are checked before Start, with the sentence that says what to do, and Start
    stays disabled (the workflow checks again when a run starts)."""
    store = Store.open(team_env.url)
    store.set_limits(storage_quota_mb=0.000001, llm_calls_per_day=None, workspace="B")
    try:
        at = signed_in(ERIN, "run")
        errors = [e.value for e in at.error]
        assert any("storage quota" in e and "ask an admin" in e for e in errors), errors
        start = next(b for b in at.button if b.label == "Start run")
        assert start.disabled
    finally:
        store.set_limits(storage_quota_mb=None, llm_calls_per_day=None, workspace="B")
        store.close()
    at = signed_in(ERIN, "run")
    assert not next(b for b in at.button if b.label == "Start run").disabled


def test_a_forced_call_is_refused_by_the_scoped_store(team_env) -> None:
    """The buttons are hidden, but a page that called the service anyway would be refused: a
    script acting as carol (as the gate leaves her in the session) deletes alice's corpus."""
    store = Store.open(team_env.url)

    def forced(corpus_id: int) -> None:
        from corpusmap import service
        from ui import resources
        from ui.errors import user_errors

        with user_errors("Cannot delete the corpus"):
            service.delete_corpus(resources.store(), corpus_id)

    at = AppTest.from_function(forced, default_timeout=TIMEOUT, args=(team_env.alice_corpus,))
    at.session_state[keys.ACCESS] = store.access_for(CAROL, "A")
    at.run()
    assert_clean(at)
    assert [e.value for e in at.error] == [
        f"Cannot delete the corpus: {CAROL} is a viewer in workspace 'A' and cannot delete or "
        "manage members; ask one of its admins for the admin role"
    ]
    assert store.get_corpus(team_env.alice_corpus).name.startswith(ALICE_CORPUS)
    # And with no one signed in, the page stops instead of reaching the unscoped store.
    at = AppTest.from_function(forced, default_timeout=TIMEOUT, args=(team_env.alice_corpus,))
    at.run()
    assert_clean(at)
    assert not at.error
    assert store.get_corpus(team_env.alice_corpus).name.startswith(ALICE_CORPUS)


def test_a_cached_frame_is_never_served_to_a_user_of_another_workspace(team_env) -> None:
    """Each cached read is filled by alice, then asked for by bob with the very same run or
    corpus id and version: he gets "not found", never her cached frame."""

    def script(url: str, run_id: int, corpus_id: int, alice: object, bob: object) -> None:
        import streamlit as st

        from storage import NotFoundError
        from ui import context, data

        reads = {
            "map_points": lambda who: data.map_points(url, who, run_id, "v1"),
            "cluster_overview": lambda who: data.cluster_overview(url, who, run_id, "v1"),
            "context_frame": lambda who: context._context_frame(url, who, run_id, "v1"),
            "kinds": lambda who: context._kinds(url, who, run_id, "v1"),
            "corpus_texts": lambda who: data._corpus_texts(url, who, corpus_id),
            "corpus_sample": lambda who: data._corpus_sample(url, who, corpus_id, 200),
        }
        for name, read in reads.items():
            assert len(read(alice)) > 0
            try:
                read(bob)
            except NotFoundError as err:
                st.text(f"{name}: {err}")
            else:
                st.text(f"{name}: served")

    store = Store.open(team_env.url)
    at = AppTest.from_function(
        script,
        default_timeout=TIMEOUT,
        args=(
            team_env.url,
            team_env.alice_run,
            team_env.alice_corpus,
            store.access_for(ALICE, "A"),
            store.access_for(BOB, "B"),
        ),
    )
    at.run()
    assert_clean(at)
    run, corpus = team_env.alice_run, team_env.alice_corpus
    assert [t.value for t in at.text] == [
        f"map_points: no run #{run}; `corpusmap runs` lists them",
        f"cluster_overview: no run #{run}; `corpusmap runs` lists them",
        f"context_frame: no run #{run}; `corpusmap runs` lists them",
        f"kinds: no run #{run}; `corpusmap runs` lists them",
        f"corpus_texts: no corpus #{corpus}; `corpusmap corpora` lists them",
        f"corpus_sample: no corpus #{corpus}; `corpusmap corpora` lists them",
    ]


def test_a_link_to_another_workspaces_run_is_not_found_like_a_missing_one(team_env) -> None:
    at = signed_in(BOB)
    seen: dict[int, list[str]] = {}
    for run_id in (team_env.alice_run, 999_999):
        at.query_params["run"] = str(run_id)
        at.switch_page("pages/explore.py").run()
        assert_clean(at)
        seen[run_id] = [e.value for e in at.error]
        text = page_text(at)
        assert SECRET not in text and ALICE_CORPUS not in text
    assert seen[team_env.alice_run] == [
        f"no run #{team_env.alice_run}; `corpusmap runs` lists them"
    ]
    assert seen[999_999] == ["no run #999999; `corpusmap runs` lists them"]
    at.query_params["corpus"] = str(team_env.alice_corpus)
    at.switch_page("pages/run.py").run()
    assert [e.value for e in at.error] == [
        f"no corpus #{team_env.alice_corpus}; `corpusmap corpora` lists them"
    ]
    assert f"Corpus #{team_env.bob_corpus} {BOB_CORPUS}" in at.caption[0].value


def test_an_admin_manages_members_and_limits_and_reads_the_trail(team_env) -> None:
    at = signed_in(ALICE, "team")
    assert "Audit trail (CSV)" in [d.label for d in at.get("download_button")]
    trail = at.dataframe[-1].value
    assert {"sign-in", "upload", "run"} <= set(trail["action"]), set(trail["action"])
    widget(at.text_input, "Username").input(DAVE)
    widget(at.selectbox, "Role").select("editor")
    click(at, "Add or change role")
    members = at.dataframe[0].value
    assert dict(zip(members["user"], members["role"], strict=True))[DAVE] == "editor"
    widget(at.selectbox, "Member to remove").select(DAVE)
    click(at, "Remove…")
    click(at, "Yes, remove")
    assert DAVE not in set(at.dataframe[0].value["user"])

    widget(at.number_input, "Storage quota (MB; empty: no quota)").set_value(250.0)
    widget(at.number_input, "LLM calls per day (empty: no limit)").set_value(100)
    click(at, "Save limits")
    assert at.text[0].value.endswith("of 250 MB · LLM calls today 0 of 100"), at.text[0].value
    trail = at.dataframe[-1].value
    assert list(trail["action"][:3]) == ["limits", "member", "member"], trail.head()
    workspace.set_limits(
        Store.open(team_env.url).scoped(Store.open(team_env.url).access_for(ALICE, "A")),
        storage_quota_mb=500,
        llm_calls_per_day=1000,
    )


def test_the_audit_csv_cannot_run_a_formula_in_a_spreadsheet(team: TeamData) -> None:
    """A user name is whatever the identity provider says: as a cell it must stay text."""
    evil = '=HYPERLINK("http://evil.example","x")'
    store = Store.open(team.url)
    alice = store.scoped(store.access_for(ALICE, "A"))
    store.add_user(evil)
    workspace.set_member(alice, evil, "viewer")
    workspace.record_export(store.scoped(store.access_for(evil, "A")), team.alice_run, "csv")
    rows = list(csv.reader(io.StringIO(workspace.audit_bytes(alice, "csv").decode("utf-8"))))
    assert rows[0] == list(workspace.AUDIT_COLUMNS)
    assert rows[1][1:6] == ["A", "'" + evil, "export", "run", str(team.alice_run)]
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@")), row
    workspace.remove_member(alice, evil)


@pytest.fixture(autouse=True)
def _no_leftover_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("CORPUSMAP_TEAM", "CORPUSMAP_SIGN_IN", "CORPUSMAP_SESSION_HOURS"):
        monkeypatch.delenv(name, raising=False)
    yield
