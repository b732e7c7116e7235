"""The CLI in team mode (issue 17), in-process with click's CliRunner on a real SQLite file: the
operator's ``users`` and ``workspaces`` commands, and every other command acting as the user
``--user`` names, with that user's role, blind to other workspaces."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner, Result

from corpusmap import accounts, api
from corpusmap.cli import main
from corpusmap.team import TeamSetupError
from storage import NotFoundError, Store

PASSWORDS = {"ana": "ana-long-passphrase", "vic": "vic-long-passphrase"}
FORBIDDEN_EDIT = "vic is a viewer in workspace 'Default' and cannot upload, run or edit"
FORBIDDEN_ADMIN = "vic is a viewer in workspace 'Default' and cannot delete or manage members"


def cli(db: Path, *args: str, user: str | None = None, input: str | None = None) -> Result:
    acting = ["--user", user] if user else []
    return CliRunner().invoke(main, [*acting, *args, "--db", str(db)], input=input)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def refused(result: Result, sentence: str) -> None:
    assert result.exit_code == 2, result.output
    assert sentence in result.stderr, result.stderr


def write_corpus(rows: list[dict], path: Path) -> Path:
    pd.DataFrame({"text": [r["text"] for r in rows], "label": [r["label"] for r in rows]}).to_csv(
        path, index=False
    )
    return path


def copy_db(source: Path, target: Path) -> Path:
    """A copy to change, WAL included (SQLite's backup API)."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    return target


@pytest.fixture(scope="module")
def team(tmp_path_factory, banking_rows):
    """Ana (admin) and Vic (viewer) in Default, Bea (admin) in "other", a run in each."""
    folder = tmp_path_factory.mktemp("team")
    db = folder / "team.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CORPUSMAP_TEAM", "1")
        ok(
            cli(
                db,
                "users",
                "add",
                "ana",
                "--admin",
                "--password-stdin",
                input="ana-long-passphrase\n",
            )
        )
        ok(cli(db, "users", "add", "vic", "--password-stdin", input="vic-long-passphrase\n"))
        ok(cli(db, "users", "add", "bea", "--oidc"))
        ok(cli(db, "workspaces", "create", "other"))
        ok(cli(db, "workspaces", "add-member", "Default", "vic", "viewer"))
        ok(cli(db, "workspaces", "add-member", "other", "bea", "admin"))
        runs = {}
        for n, user in enumerate(["ana", "bea"]):
            corpus = write_corpus(banking_rows[n * 60 : n * 60 + 60], folder / f"{user}.csv")
            result = ok(
                cli(
                    db,
                    "run",
                    str(corpus),
                    "--out",
                    str(folder / f"{user}_out.csv"),
                    "--n-clusters",
                    "3",
                    "--json",
                    "-q",
                    user=user,
                )
            )
            runs[user] = json.loads(result.stdout)
    return {"db": db, "folder": folder, "runs": runs}


@pytest.fixture
def team_mode(monkeypatch):
    monkeypatch.setenv("CORPUSMAP_TEAM", "1")
    monkeypatch.delenv("CORPUSMAP_USER", raising=False)
    monkeypatch.delenv("CORPUSMAP_WORKSPACE", raising=False)


@pytest.fixture
def single_user(monkeypatch):
    monkeypatch.setenv("CORPUSMAP_TEAM", "0")
    monkeypatch.delenv("CORPUSMAP_USER", raising=False)
    monkeypatch.delenv("CORPUSMAP_WORKSPACE", raising=False)


# --- the operator's commands ----------------------------------------------------------------


def test_users_add_list_disable_enable_reset(tmp_path, single_user):
    db = tmp_path / "users.db"
    added = ok(
        cli(db, "users", "add", "ana", "--display-name", "Ana", input="first-password\n" * 2)
    )
    assert "added ana (signs in with their password)" in added.output
    refused(cli(db, "users", "add", "ana", "--oidc"), "user 'ana' exists already")
    mismatch = cli(db, "users", "add", "bob", input="first-password\nother-password\n")
    assert mismatch.exit_code != 0 and "do not match" in mismatch.stderr
    refused(cli(db, "users", "add", "tim", "--password-stdin", input="short\n"), "at least 8")
    ok(cli(db, "users", "add", "eve@example.org", "--oidc"))
    assert Store.open(str(db)).get_user("bob") is None
    listed = ok(cli(db, "users", "list")).output.splitlines()
    assert [line.split()[:3] for line in listed] == [
        ["ana", "password", "enabled"],
        ["eve@example.org", "oidc", "enabled"],
    ]
    store = Store.open(str(db))
    token = accounts.sign_in(store, "ana", "first-password", client="cli", session_hours=1)
    ok(cli(db, "users", "disable", "ana"))
    assert "disabled" in ok(cli(db, "users", "list")).output.splitlines()[0]
    assert accounts.user_for_token(store, token) is None
    with pytest.raises(accounts.SignInError, match="wrong user name or password"):
        accounts.sign_in(store, "ana", "first-password", client="cli", session_hours=1)
    ok(cli(db, "users", "enable", "ana"))
    token = accounts.sign_in(store, "ana", "first-password", client="cli", session_hours=1)
    reset = ok(cli(db, "users", "reset", "ana", "--password-stdin", input="second-password\n"))
    assert "their sessions are ended" in reset.output
    assert accounts.user_for_token(store, token) is None
    with pytest.raises(accounts.SignInError):
        accounts.sign_in(store, "ana", "first-password", client="cli", session_hours=1)
    assert accounts.sign_in(store, "ana", "second-password", client="cli", session_hours=1)
    refused(cli(db, "users", "reset", "nobody", "--password-stdin", input="x" * 9), "no user")
    refused(cli(db, "users", "disable", "nobody"), "no user 'nobody'")


def test_the_first_admin_claims_the_default_workspace_once(tmp_path, single_user):
    db = tmp_path / "admin.db"
    first = ok(cli(db, "users", "add", "ana", "--admin", "--password-stdin", input="x" * 10))
    assert "ana is the admin of the Default workspace" in first.output
    second = ok(cli(db, "users", "add", "bob", "--admin", "--oidc"))
    assert "workspaces add-member Default bob admin" in second.output
    listed = ok(cli(db, "users", "list")).output
    assert "Default (admin)" in listed.splitlines()[0] and "no workspace" in listed


def test_workspaces_members_limits_and_usage(tmp_path, single_user):
    db = tmp_path / "ws.db"
    ok(cli(db, "users", "add", "ana", "--oidc"))
    ok(cli(db, "users", "add", "bob", "--oidc"))
    created = cli(db, "workspaces", "create", "support", "--llm-calls-per-day", "100")
    assert "created workspace 'support'" in ok(created).output
    refused(cli(db, "workspaces", "create", "support"), "exists already")
    refused(cli(db, "workspaces", "create", "x", "--storage-quota-mb", "lots"), "a limit is")
    ok(cli(db, "workspaces", "add-member", "support", "ana", "admin"))
    assert (
        "bob is an editor"
        in ok(cli(db, "workspaces", "add-member", "support", "bob", "editor")).output
    )
    ok(cli(db, "workspaces", "add-member", "support", "bob", "viewer"))  # a role changes
    refused(cli(db, "workspaces", "add-member", "support", "nobody", "viewer"), "no user")
    refused(cli(db, "workspaces", "add-member", "nowhere", "bob", "viewer"), "no workspace")
    refused(cli(db, "workspaces", "remove-member", "support", "ana"), "keeps at least one admin")
    store = Store.open(str(db))
    assert {(m.username, m.role) for m in store.members(workspace="support")} == {
        ("ana", "admin"),
        ("bob", "viewer"),
    }
    ok(cli(db, "workspaces", "remove-member", "support", "bob"))
    assert [m.username for m in store.members(workspace="support")] == ["ana"]
    limits = ok(cli(db, "workspaces", "limits", "support", "--storage-quota-mb", "5"))
    assert "storage quota 5.0 MB, LLM calls per day 100" in limits.output  # the other stays
    limits = ok(cli(db, "workspaces", "limits", "support", "--llm-calls-per-day", "none"))
    assert "storage quota 5.0 MB, LLM calls per day none" in limits.output
    assert store.get_workspace("support").llm_calls_per_day is None
    listed = ok(cli(db, "workspaces", "list")).output.splitlines()
    assert listed[0].split()[:3] == ["#1", "Default", "0"]
    assert (
        "support" in listed[1] and "1 members" in listed[1] and "Storage 0 of 5.0 MB" in listed[1]
    )


def test_the_audit_trail_exports_with_spreadsheet_formulas_defused(tmp_path, single_user):
    db = tmp_path / "audit.db"
    ok(cli(db, "workspaces", "create", "=HYPERLINK(1)"))
    ok(cli(db, "users", "add", "+ana", "--oidc"))
    ok(cli(db, "workspaces", "add-member", "=HYPERLINK(1)", "+ana", "admin"))
    out = tmp_path / "trail.csv"
    ok(cli(db, "workspaces", "audit", "=HYPERLINK(1)", "-o", str(out)))
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["action"] for r in rows] == ["member", "workspace"]  # newest first
    assert {r["workspace"] for r in rows} == {"'=HYPERLINK(1)"}
    assert json.loads(rows[0]["detail"]) == {"role": "admin", "user": "+ana"}
    lines = ok(cli(db, "workspaces", "audit", "=HYPERLINK(1)", "--format", "jsonl")).stdout
    events = [json.loads(line) for line in lines.splitlines()]
    assert events[0]["workspace"] == "=HYPERLINK(1)" and events[0]["detail"]["user"] == "+ana"
    assert events[0]["actor"] == "local"
    refused(cli(db, "workspaces", "audit", "nowhere"), "no workspace 'nowhere'")


def test_no_password_in_the_output_or_the_database(tmp_path, single_user):
    db = tmp_path / "secret.db"
    secret = "correct-horse-battery-staple"
    runner = CliRunner()
    outputs = [
        runner.invoke(main, ["users", "add", "ana", "--db", str(db)], input=f"{secret}\n" * 2),
        runner.invoke(main, ["users", "reset", "ana", "--db", str(db)], input=f"{secret}2\n" * 2),
        runner.invoke(main, ["users", "add", "bob", "--db", str(db)], input=f"{secret}\nx\n"),
        runner.invoke(main, ["users", "list", "--db", str(db)]),
    ]
    assert [r.exit_code for r in outputs[:2]] == [0, 0]
    assert outputs[2].exit_code != 0  # the confirmation did not match
    assert "Password" in outputs[0].stderr  # the hidden prompt was shown, its answer not
    for result in outputs:
        assert secret not in result.output + (result.stderr or "")
    store = Store.open(str(db))
    assert accounts.sign_in(store, "ana", f"{secret}2", client="t", session_hours=1)
    with sqlite3.connect(db) as connection:
        tables = [
            r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        ]
        cells = [
            str(v)
            for table in tables
            for row in connection.execute(f'SELECT * FROM "{table}"')
            for v in row
            if isinstance(v, str | bytes)
        ]
    assert any(c.startswith("$argon2id$") for c in cells)
    assert not [c for c in cells if secret in c]


# --- acting as a user -----------------------------------------------------------------------


def test_team_mode_without_a_user_is_refused(team, team_mode):
    refused(cli(team["db"], "runs"), "team mode is on: name the user to act as")
    refused(cli(team["db"], "show", str(team["runs"]["ana"]["run_id"])), "name the user")


def test_a_user_named_in_single_user_mode_is_refused(tmp_path, single_user, monkeypatch):
    db = tmp_path / "single.db"
    ok(cli(db, "runs"))
    refused(cli(db, "runs", user="ana"), "a user or workspace was named but team mode is off")
    monkeypatch.setenv("CORPUSMAP_USER", "ana")
    refused(cli(db, "corpora"), "team mode is off")
    with pytest.raises(TeamSetupError, match="team mode is off"):
        api.open_store(str(db))


def test_a_viewer_reads_and_exports_but_cannot_run_edit_or_delete(team, team_mode):
    db, run = team["db"], team["runs"]["ana"]
    run_id, corpus_id = str(run["run_id"]), str(run["corpus_id"])
    assert f"run #{run_id}" in ok(cli(db, "show", run_id, user="vic")).output
    out = team["folder"] / "vic.csv"
    ok(cli(db, "export", run_id, "--out", str(out), user="vic"))
    assert len(pd.read_csv(out)) == 60
    lens_out = team["folder"] / "vic_lens.csv"
    ok(cli(db, "lens", run_id, "label", "--out", str(lens_out), user="vic"))
    corpus = team["folder"] / "ana.csv"
    refused(
        cli(db, "run", str(corpus), "--out", str(out), "--n-clusters", "2", "-q", user="vic"),
        FORBIDDEN_EDIT,
    )
    refused(cli(db, "edit", run_id, "rename", "0", "mine now", user="vic"), FORBIDDEN_EDIT)
    refused(cli(db, "relabel", run_id, "--labeler", "keywords", user="vic"), FORBIDDEN_EDIT)
    refused(cli(db, "delete", "run", run_id, "--yes", user="vic"), FORBIDDEN_ADMIN)
    refused(cli(db, "delete", "corpus", corpus_id, user="vic"), FORBIDDEN_ADMIN)
    store = Store.open(str(db))
    assert [r.id for r in store.list_runs(int(corpus_id))] == [int(run_id)]
    assert store.load_clusters(int(run_id))[0].name != "mine now"
    trail = ok(cli(db, "workspaces", "audit", "Default", "--format", "jsonl")).stdout
    exports = [e for e in map(json.loads, trail.splitlines()) if e["action"] == "export"]
    assert {e["actor"] for e in exports} == {"vic"}
    assert {e["object_id"] for e in exports} == {int(run_id)}
    assert [e["detail"] for e in exports] == [  # newest first
        {"format": "csv", "what": "lens"},
        {"format": "csv", "what": "labeled corpus"},
    ]


def test_another_workspaces_ids_are_not_found(team, team_mode):
    db, theirs = team["db"], team["runs"]["ana"]
    run_id, corpus_id = str(theirs["run_id"]), str(theirs["corpus_id"])
    no_run, no_corpus = f"no run #{run_id}", f"no corpus #{corpus_id}"
    out = str(team["folder"] / "stolen.csv")
    refused(cli(db, "show", run_id, user="bea"), no_run)
    refused(cli(db, "export", run_id, "--out", out, user="bea"), no_run)
    refused(cli(db, "edit", run_id, "rename", "0", "x", user="bea"), no_run)
    refused(cli(db, "edit", run_id, "log", user="bea"), no_run)
    refused(cli(db, "relabel", run_id, "--labeler", "keywords", user="bea"), no_run)
    refused(cli(db, "lens", run_id, "label", user="bea"), no_run)
    refused(cli(db, "delete", "run", run_id, "--yes", user="bea"), no_run)
    refused(cli(db, "delete", "corpus", corpus_id, "--yes", user="bea"), no_corpus)
    refused(cli(db, "runs", "--corpus", corpus_id, user="bea"), no_corpus)
    assert not Path(out).exists()
    own = team["runs"]["bea"]
    listed = ok(cli(db, "runs", user="bea")).output
    assert f"#{own['corpus_id']}" in listed and f"#{corpus_id} " not in listed
    corpora = ok(cli(db, "corpora", user="bea")).output
    assert corpora.startswith(f"#{own['corpus_id']} ") and len(corpora.splitlines()) == 1
    with pytest.raises(NotFoundError, match=no_run):
        api.open_run(int(run_id), str(db), user="bea")
    assert api.open_run(int(run_id), str(db), user="vic").info.id == int(run_id)


def test_an_admin_deletes_in_their_workspace_only(team, team_mode, tmp_path):
    db = copy_db(team["db"], tmp_path / "copy.db")
    ana, bea = team["runs"]["ana"], team["runs"]["bea"]
    refused(cli(db, "delete", "run", str(ana["run_id"]), "--yes", user="bea"), "no run")
    ok(cli(db, "delete", "run", str(bea["run_id"]), "--yes", user="bea"))
    ok(cli(db, "delete", "corpus", str(ana["corpus_id"]), "--yes", user="ana"))
    assert Store.open(str(db)).list_runs() == []


def test_a_member_of_several_workspaces_names_one(team, team_mode, tmp_path):
    db = copy_db(team["db"], tmp_path / "copy.db")
    ok(cli(db, "workspaces", "add-member", "other", "ana", "viewer"))
    refused(cli(db, "runs", user="ana"), "'ana' belongs to Default, other: name one")
    listed = CliRunner().invoke(
        main, ["--user", "ana", "--workspace", "other", "runs", "--db", str(db)]
    )
    assert f"#{team['runs']['bea']['corpus_id']}" in ok(listed).output
    refused(
        CliRunner().invoke(
            main, ["--user", "bea", "--workspace", "Default", "runs", "--db", str(db)]
        ),
        "no workspace 'Default' among 'bea'",
    )
    result = CliRunner().invoke(
        main,
        ["runs", "--db", str(db)],
        env={"CORPUSMAP_USER": "ana", "CORPUSMAP_WORKSPACE": "other"},
    )
    assert f"#{team['runs']['bea']['corpus_id']}" in ok(result).output


def test_the_python_api_acts_as_the_named_user(team, team_mode):
    db = str(team["db"])
    corpus = team["folder"] / "ana.csv"
    with pytest.raises(Exception, match=FORBIDDEN_EDIT):
        api.run(corpus, db=db, user="vic", n_clusters=2)
    with pytest.raises(TeamSetupError, match="name the user"):
        api.open_run(team["runs"]["ana"]["run_id"], db)
    handle = api.open_run(team["runs"]["ana"]["run_id"], db, user="vic")
    handle.export(team["folder"] / "api.jsonl")
    store = api.open_store(db, user="ana")
    assert store.access is not None and store.access.role == "admin"
    events = store.audit_events(limit=1)
    assert (events[0].action, events[0].actor, events[0].detail) == (
        "export",
        "vic",
        {"format": "jsonl", "what": "labeled corpus"},
    )


def store_openings() -> list[str]:
    """Where a CLI module calls ``Store.open``, as ``module:function``."""
    import ast

    package = Path(__file__).resolve().parents[2] / "corpusmap"
    found = []
    for path in sorted(package.glob("cli*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef):
                continue
            for node in ast.walk(func):
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr == "open"
                    and isinstance(node.value, ast.Name)
                    and node.value.id == "Store"
                ):
                    found.append(f"{path.stem}:{func.name}")
    return found


def test_only_the_operators_commands_open_a_store_past_the_user():
    """Every other command opens its store through cli_common.open_store, which acts as the
    --user named: a new command that calls Store.open itself fails here."""
    openings = store_openings()
    assert "cli_team:users_add" in openings  # the scan sees them
    others = [o for o in openings if not o.startswith(("cli_team:users_", "cli_team:workspaces_"))]
    assert not others, f"open the store with cli_common.open_store: {others}"


def test_a_disabled_user_acts_no_more(team, team_mode, tmp_path):
    db = copy_db(team["db"], tmp_path / "copy.db")
    ok(cli(db, "runs", user="vic"))
    ok(cli(db, "users", "disable", "vic"))
    refused(cli(db, "runs", user="vic"), "'vic' is not an enabled member of any workspace")
    refused(cli(db, "runs", user="nobody"), "'nobody' is not an enabled member")
