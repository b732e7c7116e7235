"""Team mode's gate, run by ``app.py`` on every rerun before any page: the start-up checks, then
who is signed in and in which workspace, or the sign-in screen and nothing else.

Two ways to sign in (``corpusmap.team``): OpenID Connect through Streamlit's own ``st.login`` /
``st.user`` / ``st.logout`` (the identity is the e-mail claim, else the subject), or built-in
accounts (``corpusmap.accounts``), whose token this session keeps and checks again on every
rerun, so an expired or ended session shows the sign-in form again. In single-user mode the gate
lets everything through, as before team mode existed.
"""

from __future__ import annotations

import secrets

import streamlit as st

from corpusmap import accounts, workspace
from corpusmap.team import TeamSettings, TeamSetupError
from storage import StorageError, Store
from storage.access import Access
from storage.team import Usage
from storage.users import UserInfo
from ui import frame, keys, resources, settings, widgets

SIDEBAR_WORKSPACE = "sidebar_workspace"
USAGE_SECONDS = 30
"""How long the sidebar's usage line is cached (it sums the workspace's stored text)."""
LEFT_BEHIND = (
    keys.CORPUS_ID,
    keys.RUN_ID,
    keys.JOB_ID,
    keys.UPLOAD_PARSED,
    keys.CONFIRM_DELETE_CORPUS,
    keys.CONFIRM_DELETE_RUN,
    keys.CONFIRM_REMOVE_MEMBER,
)
"""What a session forgets when it changes workspace: choices made in the other one."""


def start() -> TeamSettings:
    """The team settings, or the sentence that says why this server cannot serve (and stop)."""
    try:
        team = settings.team_settings()
        builtin = team.team and team.sign_in == "builtin"
        team.check_startup(
            st.get_option("server.address"), resources.plain_store() if builtin else None
        )
    except TeamSetupError as err:
        st.error(str(err), icon=":material/error:")
        st.stop()
    except StorageError as err:
        st.error(f"cannot open the database: {err}", icon=":material/error:")
        st.stop()
    return team


def gate(team: TeamSettings) -> Access | None:
    """None in single-user mode. In team mode the signed-in user's ``Access`` in the workspace
    they chose (read again on every rerun: a changed role or a removal counts at once), with
    their sidebar; else the sign-in screen, the navigation hidden, and the script stops."""
    if not team.team:
        return None
    store = resources.plain_store()
    user = signed_in_user(team, store)
    if user is None:
        _hold()
        sign_in_screen(team, store)
        st.stop()
    choices = store.workspaces_of(user.username)
    if not choices:
        _hold()
        st.title("No workspace yet")
        st.info(
            "You are signed in, but you are not a member of any workspace yet: ask an admin to "
            "add you.",
            icon=":material/group_add:",
        )
        signed_in_as(user.display_name or user.username)
        sign_out_button(team)
        st.stop()
    access = pick_workspace(choices)
    st.session_state[keys.ACCESS] = access
    sidebar(team, access, choices, user.display_name or user.username)
    return access


def _hold() -> None:
    """Navigation without a menu and nothing run, so the page a deep link names is kept for
    after the sign-in; and no access from before lingers in the session."""
    st.session_state.pop(keys.ACCESS, None)
    st.navigation(frame.pages(team=True, signed_out=True), position="hidden")
    frame.navigation_ran()


def signed_in_user(team: TeamSettings, store: Store) -> UserInfo | None:
    """The user this browser session signed in as (read from the database on every rerun),
    or None."""
    if team.sign_in == "oidc":
        if not st.user.is_logged_in:
            return None
        # Stored as ``accounts.identity_user`` stores it (an e-mail in lower case).
        username = accounts.identity_name(str(st.user.get("email") or st.user.get("sub") or ""))
        # One sign-in with the provider is one identity cookie, read by every browser session
        # (each tab, each reload): it is recorded once, then the account is only read again.
        issued = st.user.get("iat") or st.session_state.setdefault(
            keys.IDENTITY, secrets.token_hex(8)
        )
        sign_in = (username, str(issued))
        seen = _recorded_sign_ins()
        if sign_in in seen:
            user = store.get_user(username)
            if user is None:
                return None
        else:
            try:
                user = accounts.identity_user(store, username, str(st.user.get("name") or ""))
            except accounts.SignInError as err:
                st.error(str(err), icon=":material/block:")
                sign_out_button(team)
                st.stop()
            seen.add(sign_in)
    else:
        token = st.session_state.get(keys.AUTH_TOKEN)
        if not token:
            return None
        user = accounts.user_for_token(store, token)
        if user is None:
            st.session_state.pop(keys.AUTH_TOKEN, None)
            st.session_state[keys.SESSION_ENDED] = True
            return None
    if user.disabled:
        st.error("This account is disabled: ask the server's operator.", icon=":material/block:")
        signed_in_as(user.username)
        sign_out_button(team)
        st.stop()
    return user


@st.cache_resource
def _recorded_sign_ins() -> set[tuple[str, str]]:
    """(user name, the identity token's issue time) of the OpenID Connect sign-ins this server
    process has recorded."""
    return set()


def sign_in_screen(team: TeamSettings, store: Store) -> None:
    st.title("Sign in")
    st.caption("This corpusmap is shared by a team: sign in to see your workspace.")
    if team.sign_in == "oidc":
        st.button(
            "Sign in",
            type="primary",
            icon=":material/login:",
            on_click=st.login,
            args=(team.oidc_provider or None,),
        )
        return
    if st.session_state.pop(keys.SESSION_ENDED, False):
        st.info("Your session has ended: sign in again.", icon=":material/schedule:")
    # Cleared on submit: the password never stays in the session or the page after a try.
    with st.form("sign_in", clear_on_submit=True, enter_to_submit=True):
        username = st.text_input("Username", autocomplete="username")
        password = st.text_input("Password", type="password", autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary", icon=":material/login:")
    if submitted:
        try:
            token = accounts.sign_in(
                store,
                username.strip(),
                password,
                client=client_address(),
                session_hours=team.session_hours,
            )
        except accounts.SignInError as err:
            st.error(str(err), icon=":material/error:")
        else:
            st.session_state[keys.AUTH_TOKEN] = token
            st.rerun()


def client_address() -> str:
    """The browser's address as the server sees it (sign-in attempts are throttled by it)."""
    address = st.context.ip_address
    return address if isinstance(address, str) and address else "unknown"


def pick_workspace(choices: list[Access]) -> Access:
    """The workspace the session chose, else the first of the user's (by name)."""
    chosen = st.session_state.get(keys.WORKSPACE)
    access = next((a for a in choices if a.workspace == chosen), choices[0])
    st.session_state[keys.WORKSPACE] = access.workspace
    return access


def _switch_workspace() -> None:
    st.session_state[keys.WORKSPACE] = st.session_state[SIDEBAR_WORKSPACE]
    for key in LEFT_BEHIND:
        st.session_state.pop(key, None)


def sidebar(team: TeamSettings, access: Access, choices: list[Access], name: str) -> None:
    """Who is signed in, the workspace picker (several workspaces), the role, the usage of the
    workspace's limits, and Sign out."""
    with st.sidebar:
        signed_in_as(name)
        if len(choices) > 1:
            names = [a.workspace for a in choices]
            st.session_state[SIDEBAR_WORKSPACE] = access.workspace
            st.selectbox("Workspace", names, key=SIDEBAR_WORKSPACE, on_change=_switch_workspace)
        st.caption(
            f"{access.role.capitalize()} in workspace {widgets.plain(access.workspace)}",
        )
        st.caption(workspace.usage_line(_usage(resources.database_url(), access)))
        sign_out_button(team)


def signed_in_as(name: str) -> None:
    # st.text: a name (an e-mail address from the identity provider) shows as itself; markdown
    # would make it a mailto link.
    st.caption("Signed in as")
    st.text(name)


@st.cache_data(ttl=USAGE_SECONDS, max_entries=64, show_spinner=False)
def _usage(url: str, who: Access) -> Usage:
    return workspace.usage(resources.scoped_store(url, who))


def forget_usage() -> None:
    """After a change of limits: the sidebar shows the new ones at once."""
    _usage.clear()


def sign_out_button(team: TeamSettings) -> None:
    st.button("Sign out", icon=":material/logout:", on_click=sign_out, args=(team,))


def sign_out(team: TeamSettings) -> None:
    """End the sign-in (built-in: the stored session too) and forget everything this browser
    session held, so whoever signs in next starts clean."""
    token = st.session_state.get(keys.AUTH_TOKEN)
    if token:
        accounts.sign_out(resources.plain_store(), token)
    for key in list(st.session_state):
        del st.session_state[key]
    if team.sign_in == "oidc":
        st.logout()
