"""Team: the workspace's members and their roles, its limits and their use, and for admins the
audit trail (who uploaded, ran, edited, exported or deleted what, and when)."""

import pandas as pd
import streamlit as st

from corpusmap import workspace
from ui import auth, frame, keys, resources, widgets
from ui.errors import user_errors

frame.require(__file__)

AUDIT_SHOWN = 500

store = resources.store()
who = resources.access()
st.title("Team")
if who is None:
    st.info("Team mode is off: this corpusmap has one user and no sign-in.")
    st.stop()
is_admin = who.allows("admin")
st.caption(
    f"Workspace {widgets.plain(who.workspace)}, where you are {who.role}. Viewers read and "
    "export; editors also upload, run and edit; admins also manage members and limits, delete, "
    "and read the audit trail."
)
widgets.flash()


def done(message: str) -> None:
    st.session_state[keys.FLASH] = message
    st.rerun()


st.subheader("Members", divider="gray")
members = workspace.members(store)
st.dataframe(
    pd.DataFrame(
        {
            "user": [m.username for m in members],
            "name": [m.display_name for m in members],
            "role": [m.role for m in members],
            "disabled": [m.disabled for m in members],
        }
    ),
    hide_index=True,
)
if is_admin:
    with st.form("add_member", clear_on_submit=True):
        left, right = st.columns([2, 1])
        username = left.text_input(
            "Username",
            help="An account that exists: the server's operator adds built-in accounts "
            "(`corpusmap users add`); OpenID Connect users exist once they have signed in.",
        )
        role = right.selectbox("Role", workspace.ROLES)
        if st.form_submit_button("Add or change role", icon=":material/person_add:"):
            with user_errors("Cannot set the member"):
                workspace.set_member(store, username, role)
                done(f"{username.strip()} is now {role} in {who.workspace}.")
    others = [m.username for m in members]
    left, right = st.columns([2, 1])
    leaving = left.selectbox("Member to remove", others, key="remove_member")
    if right.button("Remove…", icon=":material/person_remove:", disabled=not others):
        st.session_state[keys.CONFIRM_REMOVE_MEMBER] = leaving
    pending = st.session_state.get(keys.CONFIRM_REMOVE_MEMBER)
    if pending in others and widgets.confirm(
        keys.CONFIRM_REMOVE_MEMBER,
        f"Remove {widgets.plain(pending)} from {widgets.plain(who.workspace)}? They lose access "
        "to its corpora and runs at once.",
        "Yes, remove",
    ):
        with user_errors("Cannot remove the member"):
            workspace.remove_member(store, pending)
            done(f"{pending} removed from {who.workspace}.")

st.subheader("Limits and usage", divider="gray")
usage = workspace.usage(store)
st.text(workspace.usage_line(usage))
if is_admin:
    with st.form("limits"):
        left, right = st.columns(2)
        quota = left.number_input(
            "Storage quota (MB; empty: no quota)",
            min_value=0.0,
            value=usage.storage_quota_mb,
            step=100.0,
            help="Text and cells of the workspace's corpora; an upload past it is refused.",
        )
        calls = right.number_input(
            "LLM calls per day (empty: no limit)",
            min_value=0,
            value=usage.llm_calls_per_day,
            step=100,
            help="A run that plans more calls than are left today (UTC) is refused before it starts.",
        )
        if st.form_submit_button("Save limits", icon=":material/save:"):
            with user_errors("Cannot set the limits"):
                workspace.set_limits(
                    store,
                    storage_quota_mb=None if quota is None else float(quota),
                    llm_calls_per_day=None if calls is None else int(calls),
                )
                auth.forget_usage()
                done("Limits saved.")

st.subheader("Audit trail", divider="gray")
if not is_admin:
    st.caption("The workspace's admins read the audit trail.")
    st.stop()
trail = workspace.audit_table(store, AUDIT_SHOWN)
st.caption(f"The latest {min(len(trail), AUDIT_SHOWN):,} events, newest first.")
st.dataframe(trail, hide_index=True)
st.download_button(
    "Audit trail (CSV)",
    data=lambda: workspace.audit_bytes(store, "csv"),
    file_name="corpusmap_audit.csv",
    mime="text/csv",
    icon=":material/download:",
    on_click="ignore",
    key="audit_csv",
)
