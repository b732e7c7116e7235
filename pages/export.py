"""Export: the labeled corpus (CSV, JSONL, Parquet, XLSX), the cluster table and an HTML report.
Files are built when their button is clicked, not on every page load."""

import streamlit as st

from corpusmap import downloads
from ui import frame, resources, widgets

frame.require(__file__)

store = resources.store()
run = widgets.need_run(store)
stem = downloads.file_stem(store, run.id)

st.title("Export")
st.caption(widgets.plain(widgets.run_title(run)))

st.subheader("Labeled corpus", divider="gray")
st.caption(
    "Every input row in input order with all its columns, plus cluster_id (-1 = outlier), "
    "cluster_label, cluster_description and cluster_probability. CSV and XLSX neutralise cells "
    "that start with =, +, - or @ so a spreadsheet never runs them."
)
for col, fmt in zip(
    st.columns(len(downloads.CORPUS_FORMATS)), downloads.CORPUS_FORMATS, strict=True
):
    widgets.export_button(
        col,
        f"{fmt.upper()}",
        lambda fmt=fmt: downloads.labeled_corpus_bytes(store, run.id, fmt),
        run_id=run.id,
        fmt=fmt,
        what="labeled corpus",
        file_name=f"{stem}.{fmt}",
        mime=downloads.MIME[fmt],
        icon=":material/download:",
        key=f"corpus_{fmt}",
    )

st.subheader("Cluster table", divider="gray")
st.caption(
    "One row per cluster: id, name, size, share, keywords, description, inclusion criterion, faithfulness, and when the run has them its parent and keyword rule with precision and recall."
)
for col, fmt in zip(st.columns(4), downloads.TABLE_FORMATS, strict=False):
    widgets.export_button(
        col,
        f"{fmt.upper()}",
        lambda fmt=fmt: downloads.cluster_table_bytes(store, run.id, fmt),
        run_id=run.id,
        fmt=fmt,
        what="cluster table",
        file_name=f"{stem}_clusters.{fmt}",
        mime=downloads.MIME[fmt],
        icon=":material/table:",
        key=f"clusters_{fmt}",
    )

st.subheader("Balanced sample", divider="gray")
st.caption(
    "N rows drawn evenly across clusters, so small clusters are as present as large ones (for "
    "annotation or a curated training set); outliers are left out. Same columns as the labeled corpus."
)
has_parents = bool(run.hierarchy)
left, right = st.columns([1, 2])
n_sample = left.number_input("Rows", min_value=1, max_value=1_000_000, value=200, step=50)
by_parent = right.toggle(
    "Even across parents first, then their clusters",
    value=has_parents,
    disabled=not has_parents,
    help="With a hierarchy: each parent gets the same share, split evenly among its clusters.",
)
for col, fmt in zip(st.columns(4), downloads.TABLE_FORMATS, strict=False):
    widgets.export_button(
        col,
        f"{fmt.upper()}",
        lambda fmt=fmt: downloads.balanced_sample_bytes(
            store, run.id, int(n_sample), fmt, by_parent=by_parent
        ),
        run_id=run.id,
        fmt=fmt,
        what="balanced sample",
        file_name=f"{stem}_sample{int(n_sample)}.{fmt}",
        mime=downloads.MIME[fmt],
        icon=":material/balance:",
        key=f"sample_{fmt}",
    )

st.subheader("Report", divider="gray")
st.caption(
    "One HTML file that opens offline: a summary, the interactive map, and every cluster's "
    "name, description and examples."
)
widgets.export_button(
    st,
    "HTML report",
    lambda: downloads.report_bytes(store, run.id),
    run_id=run.id,
    fmt="html",
    what="report",
    file_name=f"{stem}_report.html",
    mime=downloads.MIME["html"],
    icon=":material/description:",
    key="report_html",
)
