"""Explore: the map, the clusters (similar ones next to each other), and each cluster's texts."""

import streamlit as st

from corpusmap import explore, figures
from ui import data, resources, widgets

store = resources.store()
run = widgets.need_run(store)
points, table = data.run_frames(run)
order = table["cluster_id"].tolist()
titles = {c: explore.cluster_title(c, n) for c, n in zip(table["cluster_id"], table["name"], strict=True)}

st.title("Explore")
st.caption(widgets.plain(f"{widgets.run_title(run)}" + (f" · goal: {run.goal}" if run.goal else "")))

n_outliers = int((points["cluster_id"] == -1).sum())
cols = st.columns(5)
cols[0].metric("Texts", f"{len(points):,}")
cols[1].metric("Clusters", f"{len(order)}")
cols[2].metric("Outliers", f"{n_outliers / max(len(points), 1):.0%}", help=f"{n_outliers:,} texts in no cluster (grey on the map).")
silhouette = run.metrics.get("silhouette")
cols[3].metric("Silhouette", "—" if silhouette is None else f"{silhouette:.2f}", help="Separation of clusters in the clustering space, -1 to 1.")
faith = run.metrics.get("faithfulness")
cols[4].metric("Faithfulness", "—" if faith is None else f"{faith:.2f}", help="How well the descriptions pick out their own clusters' texts (share of texts nearest their own description).")

f1, f2 = st.columns([2, 1])
chosen = f1.multiselect(
    "Clusters",
    [-1, *order],
    format_func=lambda c: "outliers" if c == -1 else titles[c],
    placeholder="All clusters",
)
query = f2.text_input("Search texts", placeholder="e.g. card", help="Texts containing these characters, any case.")
shown = explore.find_members(points, cluster_ids=chosen, query=query)
if chosen or query.strip():
    st.caption(f"{len(shown):,} of {len(points):,} texts match.")

tab_map, tab_table, tab_sizes = st.tabs(["Map", "Clusters", "Sizes"])
with tab_map:
    figure = figures.cluster_map(shown, order, titles)
    selection = st.plotly_chart(
        figure, key="map", on_select="rerun", selection_mode=("points", "box", "lasso"), config={"displaylogo": False}
    )
    picked = [p.get("customdata") for p in selection.selection.get("points", [])] if selection else []
    st.caption("Hover a point to read its text; drag a box or lasso to list the texts inside. Similar clusters get similar colours.")
with tab_table:
    st.dataframe(
        table[["cluster_id", "name", "size", "share", "keywords", "faithfulness", "similar to", "stale"]],
        hide_index=True,
        column_config={
            "cluster_id": st.column_config.NumberColumn("id", width="small"),
            "share": st.column_config.ProgressColumn("share", format="percent", min_value=0.0, max_value=float(max(table["share"].max(), 0.01)) if len(table) else 1.0),
            "faithfulness": st.column_config.NumberColumn("faithfulness", format="%.2f", help="Share of the cluster's texts nearest its own description."),
            "similar to": st.column_config.TextColumn("similar to", help="Ids of the nearest clusters."),
            "stale": st.column_config.CheckboxColumn("stale", help="Changed by an edit since it was labelled: relabel it on the Edit page."),
        },
    )
    st.caption("Clusters are listed so that similar ones sit next to each other.")
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
        widgets.labelled_text("The LLM failed; the keyword label is shown", cluster.label_error[:300])
    widgets.labelled_text("Description", cluster.description or "No description.")
    if cluster.inclusion_criterion:
        widgets.labelled_text("Inclusion criterion", cluster.inclusion_criterion)
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
