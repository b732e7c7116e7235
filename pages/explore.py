"""Explore: the map, the clusters (similar ones next to each other), and each cluster's texts."""

import streamlit as st

from corpusmap import explore, figures, structure, views
from ui import data, frame, resources, widgets
from ui.errors import user_errors

frame.require(__file__)

store = resources.store()
can_edit = resources.allows("edit")
run = widgets.need_run(store)
points, table = data.run_frames(run)
order = table["cluster_id"].tolist()
titles = {
    c: explore.cluster_title(c, n) for c, n in zip(table["cluster_id"], table["name"], strict=True)
}

st.title("Explore")
st.caption(
    widgets.plain(f"{widgets.run_title(run)}" + (f" · goal: {run.goal}" if run.goal else ""))
)
widgets.run_warnings(run)

n_outliers = int((points["cluster_id"] == -1).sum())
cols = st.columns(5)
cols[0].metric("Texts", f"{len(points):,}")
cols[1].metric("Clusters", f"{len(order)}")
cols[2].metric(
    "Outliers",
    f"{n_outliers / max(len(points), 1):.0%}",
    help=f"{n_outliers:,} texts in no cluster (grey on the map).",
)
silhouette = run.metrics.get("silhouette")
space = (
    "the embedding space (recomputed after edits)"
    if run.metrics.get("silhouette_space") == "embeddings"
    else "the clustering space"
)
cols[3].metric(
    "Silhouette",
    "—" if silhouette is None else f"{silhouette:.2f}",
    help=f"Separation of clusters in {space}, -1 to 1.",
)
faith = run.metrics.get("faithfulness")
cols[4].metric(
    "Faithfulness",
    "—" if faith is None else f"{faith:.2f}",
    help="How well the descriptions pick out their own clusters' texts (share of texts nearest their own description).",
)

f1, f2 = st.columns([2, 1])
chosen = f1.multiselect(
    "Clusters",
    [-1, *order],
    format_func=lambda c: "outliers" if c == -1 else titles[c],
    placeholder="All clusters",
)
query = f2.text_input(
    "Search texts", placeholder="e.g. card", help="Texts containing these characters, any case."
)
shown = explore.find_members(points, cluster_ids=chosen, query=query)
if chosen or query.strip():
    st.caption(f"{len(shown):,} of {len(points):,} texts match.")

novel = explore.novel_clusters(run)
has_parents = "parent_id" in table.columns
table["new"] = table["cluster_id"].isin(novel)
tab_map, tab_table, tab_tree, tab_sizes = st.tabs(["Map", "Clusters", "Hierarchy", "Sizes"])
with tab_map:
    # Non-matching texts stay on the map, faint, so it neither moves nor re-zooms (issue 15).
    matching = points["document_id"].isin(shown["document_id"]) if chosen or query.strip() else None
    figure = figures.cluster_map(points, order, titles, highlight=matching)
    selection = st.plotly_chart(
        figure,
        key="map",
        on_select="rerun",
        selection_mode=("points", "box", "lasso"),
        config={"displaylogo": False},
    )
    picked = (
        [p.get("customdata") for p in selection.selection.get("points", [])] if selection else []
    )
    st.caption(
        "Hover a point to read its text; drag a box or lasso to list the texts inside. Similar clusters get similar colours."
    )
with tab_table:
    shown_columns = [
        "cluster_id",
        "name",
        "size",
        "share",
        "keywords",
        "faithfulness",
        "similar to",
        "stale",
    ]
    if has_parents:
        shown_columns.insert(2, "parent_name")
    if "rule" in table.columns:
        shown_columns += ["rule", "rule_precision", "rule_recall"]
    if novel:
        shown_columns.insert(2, "new")
    st.dataframe(
        table[shown_columns],
        hide_index=True,
        column_config={
            "cluster_id": st.column_config.NumberColumn("id", width="small"),
            "share": st.column_config.ProgressColumn(
                "share",
                format="percent",
                min_value=0.0,
                max_value=float(max(table["share"].max(), 0.01)) if len(table) else 1.0,
            ),
            "faithfulness": st.column_config.NumberColumn(
                "faithfulness",
                format="%.2f",
                help="Share of the cluster's texts nearest its own description.",
            ),
            "similar to": st.column_config.TextColumn(
                "similar to", help="Ids of the nearest clusters."
            ),
            "stale": st.column_config.CheckboxColumn(
                "stale",
                help="Changed by an edit since it was labelled: relabel it on the Edit page.",
            ),
            "new": st.column_config.CheckboxColumn(
                "new", help="No seed-labelled text: a class the seeds did not name."
            ),
            "parent_name": st.column_config.TextColumn(
                "parent", help="The cluster's parent in the hierarchy."
            ),
            "rule": st.column_config.TextColumn(
                "keyword rule", help="A short rule on keywords that picks out the cluster's texts."
            ),
            "rule_precision": st.column_config.NumberColumn(
                "rule precision",
                format="%.2f",
                help="Share of texts the rule picks that are in the cluster.",
            ),
            "rule_recall": st.column_config.NumberColumn(
                "rule recall", format="%.2f", help="Share of the cluster's texts the rule picks."
            ),
        },
    )
    st.caption("Clusters are listed so that similar ones sit next to each other.")
    if (
        "rule" not in table.columns
        and can_edit
        and st.button(
            "Add keyword rules",
            help="Explain each cluster with a short keyword rule and its precision and recall.",
        )
    ):
        with user_errors("Cannot add rules"), st.spinner("Finding keyword rules…"):
            structure.add_rules(store, run.id)
            st.rerun()
with tab_tree:
    if has_parents:
        hierarchy = run.hierarchy
        choice = hierarchy.get("choice", {})
        st.caption(
            f"{hierarchy.get('n_parents', '?')} parents over {len(order)} clusters"
            + (f", their number chosen by {choice['method']}" if choice.get("method") else "")
            + ". Click a parent to zoom in."
        )
        st.plotly_chart(figures.hierarchy_treemap(table), key="tree", config={"displaylogo": False})
        st.dataframe(views.hierarchy_table(store, run.id), hide_index=True)
    elif not can_edit:
        st.caption("This run has one level of clusters; an editor can group them into parents.")
    else:
        st.caption(
            "This run has one level of clusters. Group them into parents (named by their keywords; the Run page can use an LLM instead):"
        )
        n_parents = st.number_input(
            "Parents (0 = automatic)", min_value=0, max_value=max(len(order) - 1, 0), value=0
        )
        if st.button("Build a hierarchy", disabled=len(order) < 3):
            with user_errors("Cannot build the hierarchy"), st.spinner("Grouping clusters…"):
                structure.add_hierarchy(
                    store, run.id, n_parents=int(n_parents) or None, llm_budget=0
                )
                st.rerun()
with tab_sizes:
    st.plotly_chart(figures.size_chart(table), key="sizes", config={"displaylogo": False})

if picked:
    # customdata carries the document id (point indices count within each trace).
    rows = points[points["document_id"].isin(picked)]
    st.subheader(f"{len(rows)} selected texts", divider="gray")
    st.dataframe(rows[["cluster", "text"]], hide_index=True)

st.subheader("Cluster", divider="gray")
if not order:
    st.info("This run has no clusters.")
    st.stop()
cluster_id = st.selectbox("Cluster", order, format_func=titles.get, label_visibility="collapsed")
clusters = {c.cluster_id: c for c in store.load_clusters(run.id)}
cluster = clusters[cluster_id]
left, right = st.columns([3, 2])
with left:
    # Names, descriptions and texts come from the corpus or an LLM: st.text shows them as
    # they are, with no markdown or HTML rendering at all.
    st.text(cluster.name)
    st.caption(
        f"{cluster.size:,} texts ({cluster.share:.1%}) · labels by {cluster.labeler}"
        + (" · stale: edited since labelled" if cluster.stale else "")
    )
    if cluster.label_error:
        widgets.labelled_text(
            "The LLM failed; the keyword label is shown", cluster.label_error[:300]
        )
    widgets.labelled_text("Description", cluster.description or "No description.")
    if cluster.inclusion_criterion:
        widgets.labelled_text("Inclusion criterion", cluster.inclusion_criterion)
    alternative = cluster.extra.get("llm_alternative")
    if alternative:
        widgets.labelled_text(
            "The LLM's label, set aside: its explanation was less faithful than the keywords'",
            f"{alternative.get('name', '')}: {alternative.get('description', '')}",
        )
    rule = explore.rule_text(run, cluster_id)
    if rule:
        widgets.labelled_text("Keyword rule", rule)
    if cluster.parent_id is not None and has_parents:
        parent_name = table.loc[table["cluster_id"] == cluster_id, "parent_name"].iloc[0]
        widgets.labelled_text("Parent", explore.cluster_title(cluster.parent_id, parent_name))
    if cluster_id in novel:
        st.caption("New: no seed-labelled text is in this cluster.")
    widgets.labelled_text("Keywords", ", ".join(cluster.keywords[:12]))
    neighbours = [titles[n] for n in cluster.extra.get("neighbours", []) if n in titles]
    if neighbours:
        widgets.labelled_text("Nearest clusters", "; ".join(neighbours))
    st.markdown("**Representative texts**")
    for text in widgets.shortened(list(cluster.representatives)):
        st.text("• " + text)
with right:
    search = st.text_input("Search this cluster", key=f"search_{cluster_id}")
    if search.strip():
        members = explore.find_members(points, cluster_ids=[cluster_id], query=search, limit=500)
        st.caption(f"{len(members):,} texts contain “{widgets.plain(search.strip())}”.")
    else:
        members = explore.sample_members(points, cluster_id, n=100)
        st.caption(f"A sample of {len(members):,} of {cluster.size:,} texts, most typical first.")
    st.dataframe(
        members[["text", "probability"]],
        hide_index=True,
        height=420,
        column_config={"probability": st.column_config.NumberColumn("membership", format="%.2f")},
    )
