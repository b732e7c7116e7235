"""Context: the run seen through the corpus's other columns. The map coloured by any column,
filters that restrict the map, the clusters and the texts, the lens table, the balance report,
change over time, and new texts placed into the run (issue 16)."""

import pandas as pd
import streamlit as st

from corpusmap import assign, downloads, lens, lens_figures
from corpusmap.export import table_bytes
from corpusmap.report import render_report
from ui import context, frame, keys, resources, widgets
from ui.errors import user_errors

frame.require(__file__)

store = resources.store()
run = widgets.need_run(store)
points, kinds = context.context_frame(run)
stem = downloads.file_stem(store, run.id)

st.title("Context")
st.caption(widgets.plain(widgets.run_title(run)))
widgets.flash()


def download_row(table: pd.DataFrame, name: str, key: str) -> None:
    """CSV and XLSX buttons for a table shown on this page (each in the audit trail)."""
    for col, fmt in zip(st.columns(4), downloads.TABLE_FORMATS, strict=False):
        widgets.export_button(
            col,
            fmt.upper(),
            lambda fmt=fmt: table_bytes(table, fmt),
            run_id=run.id,
            fmt=fmt,
            what=name,
            file_name=f"{stem}_{name}.{fmt}",
            mime=downloads.MIME[fmt],
            icon=":material/download:",
            key=f"{key}_{fmt}",
        )


filters: dict = {}
column = None
level = "cluster"
if kinds:
    top_left, top_mid, top_right = st.columns([2, 1, 1])
    column = top_left.selectbox(
        "Colour by",
        list(kinds),
        key=context.COLOUR,
        help="Any column of the corpus besides the text.",
    )
    detected = kinds[column]
    kind_choice = top_mid.selectbox(
        "Read as", ["detected", *lens.KINDS], help=f"Detected: {detected}.", key="context_kind"
    )
    kind = detected if kind_choice == "detected" else kind_choice
    has_parents = bool(store.load_clusters(run.id, level=1))
    level = top_right.radio(
        "Level",
        list(lens.LEVELS),
        horizontal=True,
        disabled=not has_parents,
        help="Leaf clusters, or the parents of the hierarchy (Explore → Hierarchy builds one).",
    )
    filters = context.filter_widgets(points, kinds)
else:
    st.info(
        "This corpus has no column besides its text: there is nothing to colour or filter by. New texts can still be added below.",
        icon=":material/info:",
    )

with user_errors("Cannot apply the filters"):
    kept = points[lens.filter_mask(points, filters)] if filters else points
    if filters:
        st.caption(f"{len(kept):,} of {len(points):,} texts match the filters.")

tab_map, tab_clusters, tab_lens, tab_balance, tab_time, tab_add = st.tabs(
    ["Map", "Clusters", "Lens", "Balance", "Over time", "Add texts"]
)

with tab_map:
    if column is not None and len(kept):
        st.plotly_chart(
            lens_figures.column_map(kept, column, kind),
            key="context_map",
            config={"displaylogo": False},
        )
        st.caption(
            f"Each point is a text at its place on the run's map, coloured by {widgets.plain(column)} ({kind}); grey: no value."
        )
    elif column is None:
        st.caption("No column to colour by.")

with tab_clusters:
    sizes = kept.groupby(["cluster_id", "cluster"]).size().rename("texts").reset_index()
    sizes["share"] = sizes["texts"] / max(len(kept), 1)
    st.dataframe(
        sizes.sort_values("texts", ascending=False),
        hide_index=True,
        column_config={
            "share": st.column_config.ProgressColumn(
                "share", format="percent", min_value=0.0, max_value=1.0
            )
        },
    )
    shown = ["cluster", "text", *([column] if column else [])]
    st.caption(f"{min(len(kept), 500):,} of {len(kept):,} texts.")
    st.dataframe(kept[shown].head(500), hide_index=True)

with tab_lens:
    if column is not None:
        with user_errors("Cannot compute the lens"):
            table = lens.lens_table(
                store, run.id, column, kind=kind, level=level, filters=filters, frame=points
            )
            n_sig = int(table["significant"].sum())
            if kind == "categorical":
                st.caption(
                    f"Each cluster × {widgets.plain(column)} group: its share in the cluster against the corpus, lift, odds ratio, Fisher's exact or chi-square test; q-values control the false-discovery rate over all {len(table):,} cells. {n_sig} significant at 5%."
                )
            else:
                st.caption(
                    f"Each cluster against the rest: Mann-Whitney U, effect = rank-biserial correlation (Cliff's delta, -1 to 1); q-values over clusters. {n_sig} significant at 5%."
                )
            st.dataframe(table, hide_index=True)
            download_row(table, f"lens_{column}", "lens")
            widgets.export_button(
                st,
                "HTML report with this column",
                lambda: render_report(store, run.id, context_column=column).encode("utf-8"),
                run_id=run.id,
                fmt="html",
                what=f"report with {column}",
                file_name=f"{stem}_report_{column}.html",
                mime=downloads.MIME["html"],
                icon=":material/description:",
                key="lens_report",
            )

with tab_balance:
    if column is not None:
        if kind != "categorical":
            st.caption(
                "Balance needs groups: choose a categorical column (or read this one as categorical)."
            )
        else:
            with user_errors("Cannot compute the balance"):
                report = lens.balance_report(store, run.id, column, filters=filters, frame=points)
                st.caption(
                    f"Balance of each cluster (and parent) on {widgets.plain(column)}: the smallest ratio of a group's share in it to its share in the corpus (1 = mirrors the corpus, 0 = a group is missing). Least balanced first."
                )
                st.dataframe(
                    report,
                    hide_index=True,
                    column_config={
                        "balance": st.column_config.ProgressColumn(
                            "balance", format="%.2f", min_value=0.0, max_value=1.0
                        )
                    },
                )
                download_row(report, f"balance_{column}", "balance")

with tab_time:
    date_columns = [c for c, k in kinds.items() if k == "datetime"]
    if not date_columns:
        st.caption(
            "No date column in this corpus (a column is read as dates when nearly all its cells are dates)."
        )
    else:
        left, right = st.columns(2)
        date_column = left.selectbox(
            "Date column",
            date_columns,
            index=date_columns.index(column) if column in date_columns else 0,
        )
        period_choice = right.selectbox("Period", ["automatic", "day", "week", "month", "quarter"])
        with user_errors("Cannot compute the change over time"):
            view = lens.time_view(
                store,
                run.id,
                date_column,
                period=None if period_choice == "automatic" else period_choice,
                level=level,
                filters=filters,
                frame=points,
            )
            first, last = view.changes["first_period"].iloc[0], view.changes["last_period"].iloc[0]
            st.caption(
                f"Share of each cluster per {view.period}; the clusters whose share changed most between {first:%Y-%m-%d} and {last:%Y-%m-%d} (solid: significant after FDR)."
            )
            st.plotly_chart(
                lens_figures.time_chart(view.shares, view.changes),
                key="context_time",
                config={"displaylogo": False},
            )
            st.dataframe(view.changes, hide_index=True)
            download_row(view.changes, f"over_time_{date_column}", "time")

with tab_add:
    if not resources.allows("edit"):
        st.caption("Editors of this workspace place new texts into a run here.")
    else:
        st.caption(
            "Place new texts into this run's clusters without refitting it: each goes to the nearest cluster centre; a text less similar than the run's own members usually are fits no cluster (-1). The run is not changed unless you save the result as a new run."
        )
        uploaded = st.file_uploader(
            "New texts",
            type=["csv", "tsv", "jsonl", "json", "txt", "parquet", "xlsx", "gz"],
            key=context.UPLOAD,
        )
        if uploaded is not None and st.button("Place the texts", type="primary"):
            with (
                user_errors("Cannot place the texts"),
                st.spinner("Embedding and placing the new texts…"),
            ):
                st.session_state[context.PLACEMENT] = (
                    run.id,
                    assign.place_bytes(store, run.id, uploaded.getvalue(), uploaded.name),
                )
        stored = st.session_state.get(context.PLACEMENT)
        if stored is not None and stored[0] == run.id:
            placement = stored[1]
            report = assign.drift_report(store, placement)
            for line in report.lines():
                st.text(line)
            st.dataframe(
                report.shares[report.shares["count_new"] > 0].sort_values(
                    "count_new", ascending=False
                ),
                hide_index=True,
            )
            if len(report.new_groups):
                st.markdown("**Possible new groups among the unassigned texts**")
                st.dataframe(report.new_groups, hide_index=True)
            st.dataframe(placement.frame, hide_index=True)
            download_row(placement.frame, "new_texts", "placed")
            if st.button(
                "Save as a new run",
                help="Stores this run's texts and the new ones as a new corpus and run; this run stays as it is.",
            ):
                with user_errors("Cannot save the new run"):
                    new_id = assign.save_as_run(store, placement)
                    st.session_state.pop(context.PLACEMENT, None)
                    widgets.select_run(new_id)
                    st.session_state[keys.FLASH] = (
                        f"Saved run {new_id}: run {run.id} and the new texts."
                    )
                    st.rerun()
