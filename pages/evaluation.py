"""Evaluation: a run against a ground-truth column: NMI, ARI, accuracy and clusters × labels."""

import streamlit as st

from corpusmap import evaluation, figures
from ui import frame, resources, widgets
from ui.errors import user_errors

frame.require(__file__)

HEATMAP_MAX = 40

store = resources.store()
run = widgets.need_run(store)
st.title("Evaluation")
st.caption(widgets.plain(widgets.run_title(run)))

columns = evaluation.truth_columns(store, run.corpus_id)
if not columns:
    st.info("This corpus has no column that could hold known classes (2 to 1,000 distinct values).")
    st.stop()
default = columns.index(run.label_column) if run.label_column in columns else 0
column = st.selectbox(
    "Ground-truth column",
    columns,
    index=default,
    help="A column of known classes; the clusters are scored against it.",
)
with user_errors("Cannot evaluate"):
    result = evaluation.evaluate_run(store, run.id, column)
    m1, m2, m3 = st.columns(3)
    m1.metric("NMI", f"{result.metrics['nmi']:.3f}", help="Normalised mutual information, 0 to 1.")
    m2.metric(
        "ARI", f"{result.metrics['ari']:.3f}", help="Adjusted Rand index: 0 is chance, 1 perfect."
    )
    m3.metric(
        "ACC",
        f"{result.metrics['acc']:.3f}",
        help="Accuracy after the best one-to-one matching of clusters to classes.",
    )
    st.caption("Outliers count as one cluster of their own.")
    st.subheader("Clusters and their main label", divider="gray")
    st.dataframe(
        result.per_cluster,
        hide_index=True,
        column_config={
            "purity": st.column_config.ProgressColumn(
                "purity", min_value=0.0, max_value=1.0, format="%.2f"
            )
        },
    )
    st.subheader("Clusters × labels", divider="gray")
    crosstab = result.crosstab
    figure = figures.crosstab_heatmap(crosstab, HEATMAP_MAX)
    st.plotly_chart(figure, key="crosstab")
    if crosstab.shape[0] > HEATMAP_MAX or crosstab.shape[1] > HEATMAP_MAX:
        st.caption(
            f"The map shows the {HEATMAP_MAX} largest clusters and labels; the table has them all."
        )
    st.dataframe(crosstab)
