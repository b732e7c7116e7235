"""Edit: rename and describe clusters, merge, split, move texts or mark them outliers, and
relabel the clusters an edit changed. Every edit recomputes what follows from the clusters,
is stored in the run's edit log as a sentence, and can be undone and redone."""

import pandas as pd
import streamlit as st

from corpusmap import edits, explore, labelers
from ui import data, frame, keys, resources, settings, widgets
from ui.errors import user_errors

frame.require(__file__)

OUTLIERS = -1

store = resources.store()
run = widgets.need_run(store)
points, table = data.run_frames(run)
order = table["cluster_id"].tolist()
titles = {
    c: explore.cluster_title(c, n) for c, n in zip(table["cluster_id"], table["name"], strict=True)
}
clusters = {c.cluster_id: c for c in store.load_clusters(run.id)}

st.title("Edit")
st.caption(widgets.plain(widgets.run_title(run)))
widgets.flash()


def done(message: str) -> None:
    st.session_state[keys.FLASH] = message
    st.rerun()


def show_edit_log() -> None:
    log = store.list_edits(run.id)
    if log:
        st.dataframe(
            pd.DataFrame(
                {
                    "when": [e.created_at.strftime("%Y-%m-%d %H:%M:%S") for e in log],
                    "edit": [edits.edit_sentence(e) for e in log],
                    "undone": [e.undone for e in log],
                }
            ),
            hide_index=True,
            column_config={"edit": st.column_config.TextColumn("edit", width="large")},
        )
    else:
        st.caption("No edits yet.")


if not resources.allows("edit"):
    st.info(
        "You are a viewer in this workspace: its editors rename, merge, split, move and relabel "
        "clusters. The run's edits so far:",
        icon=":material/visibility:",
    )
    show_edit_log()
    st.stop()


undo_col, redo_col, _ = st.columns([1, 1, 4])
if undo_col.button("Undo", icon=":material/undo:", disabled=not edits.can_undo(store, run.id)):
    with user_errors("Cannot undo"):
        done(f"Undid: {edits.undo(store, run.id).sentence}")
if redo_col.button("Redo", icon=":material/redo:", disabled=not edits.can_redo(store, run.id)):
    with user_errors("Cannot redo"):
        done(f"Redid: {edits.redo(store, run.id).sentence}")


if not order:
    st.info("This run has no clusters to edit.")
    st.stop()


stale = [c for c in order if clusters[c].stale]
if stale:
    st.warning(
        f"{len(stale)} cluster(s) changed since they were named, so their names may no longer "
        "fit: relabel them in the Relabel tab.",
        icon=":material/update:",
    )

tab_label, tab_merge, tab_split, tab_move, tab_relabel, tab_log = st.tabs(
    ["Rename", "Merge", "Split", "Move texts", "Relabel", "Edit log"]
)

with tab_label:
    cid = widgets.cluster_picker("Cluster", order, titles.get, "rename_cluster")
    current = clusters[cid]
    with st.form(f"rename_{cid}"):
        name = st.text_input("Name", value=current.name)
        description = st.text_area("Description", value=current.description)
        criterion = st.text_area(
            "Inclusion criterion",
            value=current.inclusion_criterion,
            help="A yes/no rule a reader can apply to one text.",
        )
        if st.form_submit_button("Save", type="primary"):
            with user_errors("Cannot save the label"):
                info = edits.rename_cluster(
                    store,
                    run.id,
                    cid,
                    name=name,
                    description=description,
                    inclusion_criterion=criterion,
                )
                done(info.sentence + ".")

with tab_merge:
    chosen = st.multiselect(
        "Clusters to merge (two or more)",
        order,
        format_func=titles.get,
        key=f"merge_clusters_{widgets.names_key(titles)}",
    )
    if st.button("Merge", disabled=len(chosen) < 2, type="primary"):
        with user_errors("Cannot merge"), st.spinner("Merging…"):
            done(edits.merge_clusters(store, run.id, chosen).sentence + ".")
    coarse = run.metrics.get("coarse") or {}
    if coarse.get("k"):
        st.divider()
        st.markdown(
            f"**Coarser grain offered: {coarse['k']} groups.** The run found a coarser level of "
            "the same tree; taking it merges the clusters of each group, as one edit that Undo "
            "takes back."
        )
        if st.button(f"Take the coarser grain ({coarse['k']} groups)", key="take_coarse"):
            with user_errors("Cannot take the coarser grain"), st.spinner("Merging…"):
                done(edits.take_coarse_grain(store, run.id).sentence + ".")

with tab_split:
    cid = widgets.cluster_picker("Cluster to split", order, titles.get, "split_cluster")
    parts = st.number_input(
        "Parts", min_value=2, max_value=20, value=2, help="k-means on the cluster's embeddings."
    )
    if st.button("Split", type="primary"):
        with user_errors("Cannot split"), st.spinner("Splitting…"):
            done(edits.split_cluster(store, run.id, cid, int(parts)).sentence + ".")

with tab_move:
    source = widgets.cluster_picker(
        "Texts from",
        [*order, OUTLIERS],
        lambda c: "outliers" if c == OUTLIERS else titles[c],
        "move_source",
    )
    query = st.text_input("Only texts containing", key="move_query")
    members = explore.find_members(points, cluster_ids=[source], query=query, limit=500)
    editor = pd.DataFrame(
        {"move": False, "text": members["text"].to_numpy()}, index=members["document_id"].to_numpy()
    )
    edited = st.data_editor(
        editor,
        hide_index=True,
        disabled=["text"],
        height=360,
        key=f"move_editor_{run.id}_{source}_{query}",
        column_config={"move": st.column_config.CheckboxColumn("select", width="small")},
    )
    selected = [int(d) for d in edited.index[edited["move"]]]
    st.caption(
        f"{len(selected)} selected of {len(members):,} shown"
        + (" (first 500)" if len(members) == 500 else "")
    )
    target = widgets.cluster_picker(
        "Move to", [c for c in order if c != source], titles.get, "move_target"
    )
    c1, c2 = st.columns(2)
    if c1.button("Move selected", disabled=not selected or target is None, type="primary"):
        with user_errors("Cannot move"), st.spinner("Moving…"):
            done(edits.move_documents(store, run.id, selected, int(target)).sentence + ".")
    if c2.button("Mark selected as outliers", disabled=not selected or source == OUTLIERS):
        with user_errors("Cannot mark outliers"), st.spinner("Updating…"):
            done(edits.move_documents(store, run.id, selected, OUTLIERS).sentence + ".")

with tab_relabel:
    kind = st.radio(
        "Labels from",
        [labelers.KEYWORDS, labelers.LLM],
        format_func={labelers.KEYWORDS: "Keywords (offline)", labelers.LLM: "An LLM"}.get,
        horizontal=True,
        key="relabel_kind",
    )
    endpoint = model = None
    if kind == labelers.LLM:
        c1, c2 = st.columns(2)
        endpoint = c1.text_input(
            "Endpoint", value=settings.default_llm_endpoint(), key="relabel_endpoint"
        )
        model = c2.text_input("Model", value=settings.default_llm_model(), key="relabel_model")
    which = st.radio(
        "Clusters",
        ["stale", "chosen", "all"],
        format_func={
            "stale": f"Changed by edits ({len(stale)})",
            "chosen": "Chosen below",
            "all": f"All ({len(order)})",
        }.get,
        horizontal=True,
        key="relabel_which",
    )
    picked = st.multiselect(
        "Clusters", order, format_func=titles.get, key="relabel_pick", disabled=which != "chosen"
    )
    ids = {"stale": stale, "chosen": picked, "all": order}[which]
    if st.button(f"Relabel {len(ids)} cluster(s)", disabled=not ids, type="primary"):
        with user_errors("Cannot relabel"), st.spinner(f"Relabelling {len(ids)} clusters…"):
            labeler = labelers.build_labeler(
                kind,
                store,
                base_url=endpoint,
                model=model,
                api_key=settings.secret(settings.API_KEY_NAME),
            )
            labels, _ = edits.relabel(store, run.id, labeler, cluster_ids=ids)
            failed = sum(1 for lab in labels if lab.status == "llm_failed")
            done(
                f"Relabelled {len(labels)} clusters"
                + (f"; the LLM failed on {failed} (keyword labels kept)" if failed else "")
                + "."
            )

with tab_log:
    show_edit_log()
