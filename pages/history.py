"""History: past runs with their config, timings and metrics; open, compare or delete them."""

import streamlit as st

from corpusmap import history, service
from ui import frame, keys, resources, widgets
from ui.errors import user_errors

frame.require(__file__)

store = resources.store()
st.title("History")
widgets.flash()

table = history.runs_table(store)
if table.empty:
    st.info("No runs yet: start one on the Run page.")
    st.page_link(widgets.PAGES["run"], label="Go to Run", icon=":material/play_arrow:")
    st.stop()

st.dataframe(
    table,
    hide_index=True,
    column_config={
        "noise_share": st.column_config.NumberColumn("outliers", format="percent"),
        "seconds": st.column_config.NumberColumn("seconds", format="%.1f"),
    },
)
run_ids = table["run"].tolist()
current = widgets.current_run(store)
titles = {r.id: widgets.run_title(r) for r in store.list_runs()}

st.subheader("One run", divider="gray")
chosen = st.selectbox(
    "Run",
    run_ids,
    index=run_ids.index(current.id) if current and current.id in run_ids else 0,
    format_func=titles.get,
    key="history_run",
)
run = store.get_run(chosen)
c1, c2, _ = st.columns([1, 1, 3])
if c1.button("Open in Explore", icon=":material/scatter_plot:", disabled=run.status == "running"):
    widgets.select_run(chosen)
    st.switch_page(widgets.PAGES["explore"])
# Deleting is for admins (in single-user mode the one user is everything).
if resources.allows("admin") and c2.button(
    "Delete…", icon=":material/delete:", disabled=run.status == "running"
):
    st.session_state[keys.CONFIRM_DELETE_RUN] = chosen
pending = st.session_state.get(keys.CONFIRM_DELETE_RUN)
if pending in run_ids and widgets.confirm(
    keys.CONFIRM_DELETE_RUN,
    f"Delete run {pending} with its clusters, assignments and edits? This cannot be undone.",
    "Yes, delete",
):
    with user_errors("Cannot delete the run"):
        service.delete_run(store, pending)
        if st.session_state.get(keys.RUN_ID) == pending:
            st.session_state.pop(keys.RUN_ID, None)
        st.session_state[keys.FLASH] = f"Run {pending} deleted."
        st.rerun()
details = history.run_details(run)
d1, d2, d3 = st.columns(3)
for column, title, key in (
    (d1, "Settings", "config"),
    (d2, "Timings (s)", "timings (s)"),
    (d3, "Figures", "metrics"),
):
    column.markdown(f"**{title}**")
    column.dataframe(history.details_table(details[key]), hide_index=True)
with st.expander("Embedder, labeler, LLM usage, versions"):
    st.dataframe(
        history.details_table(
            {k: details[k] for k in ("embedder", "labeler", "llm usage", "versions")}
        ),
        hide_index=True,
    )
if run.error:
    st.error(f"This run failed: {run.error}")

st.subheader("Compare two runs", divider="gray")
completed = [r for r in run_ids if store.get_run(r).status == "completed"]
if len(completed) < 2:
    st.caption("Needs two completed runs.")
else:
    a_col, b_col = st.columns(2)
    a = a_col.selectbox("Run A", completed, index=0, format_func=titles.get, key="compare_a")
    b = b_col.selectbox("Run B", completed, index=1, format_func=titles.get, key="compare_b")
    if a == b:
        st.caption("Choose two different runs.")
    else:
        with user_errors("Cannot compare"):
            comparison = history.compare_runs(store, a, b)
            m1, m2, m3 = st.columns(3)
            m1.metric("Texts in both", f"{comparison.shared_texts:,}")
            m2.metric(
                "NMI",
                f"{comparison.nmi:.3f}",
                help="Agreement of the two assignments, 0 to 1 (outliers count as a cluster).",
            )
            m3.metric(
                "ARI",
                f"{comparison.ari:.3f}",
                help="Adjusted Rand index: 0 is chance, 1 identical.",
            )
            st.dataframe(comparison.summary())
            st.caption("Largest overlaps between their clusters")
            st.dataframe(comparison.overlap, hide_index=True)
