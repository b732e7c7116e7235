"""The server operator's commands for team mode (issue 17): ``corpusmap users …`` (built-in and
identity-provider accounts) and ``corpusmap workspaces …`` (members, roles, limits, the audit
trail); and ``corpusmap delete run|corpus``, which acts as the ``--user`` named like every
command that reads or changes corpora and runs.

The operator's commands open the database itself (``Store.open``): whoever can reach it runs the
server. They act as nobody, so their lines in the audit trail name the actor ``local``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from corpusmap import accounts, service
from corpusmap.cli_common import db_option, handle_errors, open_store
from corpusmap.errors import CorpusmapError
from corpusmap.workspace import audit_bytes, usage_line
from storage import Store
from storage.access import LOCAL_ACTOR, ROLES, Access
from storage.team import WorkspaceInfo

NO_LIMIT = "none"


def _as_operator(ws: WorkspaceInfo) -> Access:
    """The operator acting in ``ws`` with every right, to read what is the workspace's own."""
    return Access(0, LOCAL_ACTOR, ws.id, ws.name, "admin")


# --- users ----------------------------------------------------------------------------------


@click.group()
def users() -> None:
    """Accounts (the server's operator): add, disable, enable, reset, list."""


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True))


@users.command("add")
@click.argument("name")
@click.option("--display-name", default="", help="The name the app shows.")
@click.option(
    "--admin",
    "make_admin",
    is_flag=True,
    help="Make them admin of the Default workspace (where the data from before team mode lies) "
    "if it has no member yet.",
)
@click.option(
    "--oidc",
    is_flag=True,
    help="No password: they sign in through the identity provider (OpenID Connect).",
)
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin's first line.")
@db_option
@handle_errors
def users_add(
    name: str,
    display_name: str,
    make_admin: bool,
    oidc: bool,
    password_stdin: bool,
    db: str | None,
) -> None:
    """Add the user NAME, with a password asked for twice (hidden), or --oidc."""
    if oidc and password_stdin:
        raise CorpusmapError("--oidc accounts have no password: leave --password-stdin out")
    password_hash = None if oidc else accounts.hash_password(_read_password(password_stdin))
    store = Store.open(db)
    if oidc:
        name = accounts.identity_name(name)  # the provider's e-mail, however it is typed here
    user = store.add_user(name, display_name=display_name, password_hash=password_hash)
    way = "through the identity provider" if oidc else "with their password"
    click.echo(f"added {user.username} (signs in {way})")
    if make_admin:
        if store.claim_default_workspace(user.username):
            click.echo(f"{user.username} is the admin of the Default workspace")
        else:
            click.echo(
                "the Default workspace has members already: an admin there adds "
                f"{user.username} with `corpusmap workspaces add-member Default "
                f"{user.username} admin`"
            )
    elif not store.workspaces_of(user.username):
        click.echo(
            f"{user.username} belongs to no workspace yet: `corpusmap workspaces add-member "
            f"WORKSPACE {user.username} ROLE`"
        )


@users.command("disable")
@click.argument("name")
@db_option
@handle_errors
def users_disable(name: str, db: str | None) -> None:
    """Stop NAME signing in and end their sessions (their work stays)."""
    Store.open(db).update_user(name, disabled=True)
    click.echo(f"disabled {name}; their sessions are ended")


@users.command("enable")
@click.argument("name")
@db_option
@handle_errors
def users_enable(name: str, db: str | None) -> None:
    """Let NAME sign in again."""
    Store.open(db).update_user(name, disabled=False)
    click.echo(f"enabled {name}")


@users.command("reset")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin's first line.")
@db_option
@handle_errors
def users_reset(name: str, password_stdin: bool, db: str | None) -> None:
    """Give NAME a new password (asked for twice, hidden) and end their sessions."""
    store = Store.open(db)
    if store.get_user(name) is None:  # before asking for a password
        raise CorpusmapError(f"no user {name!r}; `corpusmap users list` lists them")
    store.update_user(name, password_hash=accounts.hash_password(_read_password(password_stdin)))
    store.clear_failed_sign_ins(f"user:{name}")
    click.echo(f"new password for {name}; their sessions are ended")


@users.command("list")
@db_option
@handle_errors
def users_list(db: str | None) -> None:
    """Every account, with how it signs in, its state and workspaces."""
    store = Store.open(db)
    items = store.list_users()
    if not items:
        click.echo("no users yet: `corpusmap users add NAME --admin` makes the first admin")
        return
    for u in items:
        where = ", ".join(f"{a.workspace} ({a.role})" for a in store.workspaces_of(u.username))
        last = f"{u.last_sign_in_at:%Y-%m-%d %H:%M}" if u.last_sign_in_at else "never"
        click.echo(
            f"{u.username:<24} {'password' if u.has_password else 'oidc':<8} "
            f"{'disabled' if u.disabled else 'enabled':<8} last sign-in {last:<16}  "
            f"{where or 'no workspace'}"
        )


# --- workspaces -----------------------------------------------------------------------------


@click.group()
def workspaces() -> None:
    """Workspaces (the server's operator): create, list, members, limits, the audit trail."""


def _limit(value: str | None, kind: type, current: Any) -> Any:
    """An option's limit: left out keeps ``current``, ``none`` removes it."""
    if value is None:
        return current
    if value.strip().lower() == NO_LIMIT:
        return None
    try:
        number = kind(value)
    except ValueError as err:
        raise CorpusmapError(f"a limit is a number or {NO_LIMIT!r}, not {value!r}") from err
    if number < 0:
        raise CorpusmapError(f"a limit cannot be negative; {NO_LIMIT!r} removes it")
    return number


QUOTA_HELP = "Storage quota in MB of texts and cells ('none': no quota)."
CALLS_HELP = "LLM calls per day, UTC ('none': no budget)."


@workspaces.command("create")
@click.argument("name")
@click.option("--storage-quota-mb", default=None, metavar="MB", help=QUOTA_HELP)
@click.option("--llm-calls-per-day", default=None, metavar="N", help=CALLS_HELP)
@db_option
@handle_errors
def workspaces_create(
    name: str, storage_quota_mb: str | None, llm_calls_per_day: str | None, db: str | None
) -> None:
    """Create the workspace NAME (then add its members with `add-member`)."""
    ws = Store.open(db).create_workspace(
        name,
        storage_quota_mb=_limit(storage_quota_mb, float, None),
        llm_calls_per_day=_limit(llm_calls_per_day, int, None),
    )
    click.echo(f"created workspace {ws.name!r} (#{ws.id})")


@workspaces.command("list")
@db_option
@handle_errors
def workspaces_list(db: str | None) -> None:
    """Every workspace with its members, storage and today's LLM calls beside its limits."""
    store = Store.open(db)
    for ws in store.list_workspaces():
        usage = store.scoped(_as_operator(ws)).usage()
        members = store.members(workspace=ws.name)
        click.echo(f"#{ws.id:<4} {ws.name:<24} {len(members)} members  {usage_line(usage)}")


@workspaces.command("add-member")
@click.argument("workspace")
@click.argument("user")
@click.argument("role", type=click.Choice(ROLES))
@db_option
@handle_errors
def workspaces_add_member(workspace: str, user: str, role: str, db: str | None) -> None:
    """Make USER a member of WORKSPACE with ROLE, or change their role there."""
    Store.open(db).set_member(user, role, workspace=workspace)
    article = "an" if role[0] in "aeiou" else "a"
    click.echo(f"{user} is {article} {role} in {workspace!r}")


@workspaces.command("remove-member")
@click.argument("workspace")
@click.argument("user")
@db_option
@handle_errors
def workspaces_remove_member(workspace: str, user: str, db: str | None) -> None:
    """Take USER out of WORKSPACE (what they made stays in it)."""
    Store.open(db).remove_member(user, workspace=workspace)
    click.echo(f"{user} is no longer a member of {workspace!r}")


@workspaces.command("limits")
@click.argument("workspace")
@click.option("--storage-quota-mb", default=None, metavar="MB|none", help=QUOTA_HELP)
@click.option("--llm-calls-per-day", default=None, metavar="N|none", help=CALLS_HELP)
@db_option
@handle_errors
def workspaces_limits(
    workspace: str, storage_quota_mb: str | None, llm_calls_per_day: str | None, db: str | None
) -> None:
    """Show WORKSPACE's limits, or change those given (the others stay)."""
    store = Store.open(db)
    ws = store.get_workspace(workspace)
    if storage_quota_mb is not None or llm_calls_per_day is not None:
        ws = store.set_limits(
            storage_quota_mb=_limit(storage_quota_mb, float, ws.storage_quota_mb),
            llm_calls_per_day=_limit(llm_calls_per_day, int, ws.llm_calls_per_day),
            workspace=workspace,
        )
    quota = NO_LIMIT if ws.storage_quota_mb is None else f"{ws.storage_quota_mb:,.1f} MB"
    calls = NO_LIMIT if ws.llm_calls_per_day is None else f"{ws.llm_calls_per_day:,}"
    click.echo(f"{ws.name!r}: storage quota {quota}, LLM calls per day {calls}")


@workspaces.command("audit")
@click.argument("workspace")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True
)
@click.option("-o", "--out", default=None, help="File to write (default: stdout).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the newest N.")
@db_option
@handle_errors
def workspaces_audit(
    workspace: str, fmt: str, out: str | None, limit: int | None, db: str | None
) -> None:
    """WORKSPACE's audit trail, newest first: who uploaded, ran, edited, exported, deleted,
    signed in, and changed members or limits. CSV cells that a spreadsheet would run as a
    formula start with an apostrophe."""
    store = Store.open(db)
    trail = audit_bytes(store.scoped(_as_operator(store.get_workspace(workspace))), fmt, limit)
    if out is None:
        click.echo(trail.decode("utf-8"), nl=False)
        return
    Path(out).write_bytes(trail)
    click.echo(f"wrote {out}", err=True)


# --- deletion, as the user named --------------------------------------------------------------


@click.group()
def delete() -> None:
    """Delete a stored run or corpus (an admin of its workspace in team mode)."""


def _require_admin(store: Store) -> None:
    """Refuse a non-admin before asking them to confirm (the store refuses anyway)."""
    if store.access is not None:
        store.access.require("admin")


@delete.command("run")
@click.argument("run_id", type=int)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@db_option
@handle_errors
def delete_run(run_id: int, yes: bool, db: str | None) -> None:
    """Delete run RUN_ID with its clusters and edits (cannot be undone)."""
    store = open_store(db)
    run = store.get_run(run_id)  # another workspace's run is "not found" here
    _require_admin(store)
    if not yes:
        click.confirm(f"delete run #{run.id} of corpus #{run.corpus_id}?", abort=True, err=True)
    service.delete_run(store, run_id)
    click.echo(f"deleted run #{run_id}")


@delete.command("corpus")
@click.argument("corpus_id", type=int)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@db_option
@handle_errors
def delete_corpus(corpus_id: int, yes: bool, db: str | None) -> None:
    """Delete corpus CORPUS_ID with all its runs (cannot be undone)."""
    store = open_store(db)
    corpus = store.get_corpus(corpus_id)
    _require_admin(store)
    if not yes:
        click.confirm(
            f"delete corpus #{corpus.id} {corpus.name} and its runs?", abort=True, err=True
        )
    service.delete_corpus(store, corpus_id)
    click.echo(f"deleted corpus #{corpus_id}")


TEAM_COMMANDS = (users, workspaces, delete)
