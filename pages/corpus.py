"""Corpus: upload a file (or pick a stored corpus), check how it was read, store it."""

import streamlit as st

from corpusmap import corpora, service
from ui import frame, keys, resources, settings, widgets
from ui.errors import user_errors

frame.require(__file__)

store = resources.store()
st.title("Corpus")
widgets.flash()

can_edit = resources.allows("edit")
if can_edit:
    limit_mb = settings.upload_limit_mb()
    uploaded = st.file_uploader(
        "Upload a corpus",
        type=list(corpora.UPLOAD_TYPES),
        key=keys.UPLOAD,
        help=(
            "CSV, TSV, JSONL, JSON, TXT (one text per line), Parquet or XLSX; the text formats may be "
            f"gzipped (.gz). Files up to {limit_mb:,} MB: the limit is server.maxUploadSize in "
            ".streamlit/config.toml (or STREAMLIT_SERVER_MAX_UPLOAD_SIZE)."
        ),
    )
    st.caption(
        f"Up to {limit_mb:,} MB per file. The encoding and the text column are detected; you can "
        "change the column below. Empty rows are kept in exports but not clustered."
    )

    if uploaded is not None:
        column_key = f"{keys.UPLOAD_COLUMN}_{uploaded.file_id}"
        wanted = st.session_state.get(column_key)
        parsed = st.session_state.get(keys.UPLOAD_PARSED)
        corpus = None
        if parsed is not None and parsed[0] == (uploaded.file_id, wanted):
            corpus = parsed[1]
        else:
            with (
                user_errors(f"Cannot read {uploaded.name}"),
                st.spinner(f"Reading {uploaded.name}…"),
            ):
                corpus = corpora.read_upload(
                    uploaded.getvalue(), uploaded.name, text_column=wanted, max_mb=limit_mb
                )
                st.session_state[keys.UPLOAD_PARSED] = ((uploaded.file_id, wanted), corpus)
        if corpus is not None:
            st.subheader(corpus.name, divider="gray")
            facts = corpora.corpus_facts(corpus)
            cols = st.columns(6)
            cols[0].metric("Rows", f"{facts['rows']:,}")
            cols[1].metric("Texts to cluster", f"{facts['texts']:,}")
            cols[2].metric(
                "Empty rows",
                f"{facts['empty rows (not clustered)']:,}",
                help="Rows with no text: kept in exports, not clustered.",
            )
            cols[3].metric(
                "Duplicate texts",
                f"{facts['duplicate texts']:,}",
                help="Texts that appear earlier in the file: clustered like the rest, embedded once.",
            )
            cols[4].metric("Encoding", str(facts["encoding"]))
            cols[5].metric("Format", str(facts["format"]))
            for warning in corpus.warnings:
                st.warning(warning, icon=":material/warning:")
            st.selectbox(
                "Text column",
                corpora.text_column_choices(corpus),
                key=column_key,
                help="The column whose texts are clustered; the others are kept and exported.",
            )
            if st.button("Store and use this corpus", type="primary", icon=":material/save:"):
                with user_errors("Cannot store the corpus"):
                    info = service.store_corpus(store, corpus)
                    widgets.select_corpus(info.id)
                    st.session_state[keys.FLASH] = (
                        f"Corpus #{info.id} {info.name} is stored and selected: go to Run to cluster it."
                    )
                    st.rerun()

            st.caption(
                "Preview: the first rows as read, with the cleaned text that will be clustered."
            )
            st.dataframe(corpora.corpus_preview(corpus), hide_index=True, height=300)
else:
    st.info(
        "You are a viewer in this workspace: you can read and export its corpora and runs; "
        "an editor uploads corpora.",
        icon=":material/visibility:",
    )
st.subheader("Stored corpora", divider="gray")
table = corpora.corpora_table(store)
if table.empty:
    st.caption("None yet.")
else:
    st.dataframe(table, hide_index=True)
    current = widgets.current_corpus(store)
    ids = table["id"].tolist()
    names = dict(zip(table["id"], table["name"], strict=True))
    chosen = st.selectbox(
        "Corpus",
        ids,
        index=ids.index(current.id) if current and current.id in ids else 0,
        format_func=lambda i: f"#{i} {names[i]}",
    )
    use, delete = st.columns([1, 1])
    if use.button("Use this corpus", icon=":material/check:"):
        widgets.select_corpus(chosen)
        st.session_state[keys.FLASH] = f"Corpus #{chosen} selected."
        st.rerun()
    # Deleting is for admins (in single-user mode the one user is everything).
    if resources.allows("admin") and delete.button("Delete…", icon=":material/delete:"):
        st.session_state[keys.CONFIRM_DELETE_CORPUS] = chosen
    pending = st.session_state.get(keys.CONFIRM_DELETE_CORPUS)
    if pending is not None and pending in names:
        n_runs = int(table.loc[table["id"] == pending, "runs"].iloc[0])
        if widgets.confirm(
            keys.CONFIRM_DELETE_CORPUS,
            f"Delete corpus #{pending} {names[pending]} with its {n_runs} run(s) and their edits? "
            "This cannot be undone.",
            "Yes, delete",
        ):
            with user_errors("Cannot delete the corpus"):
                service.delete_corpus(store, pending)
                if st.session_state.get(keys.CORPUS_ID) == pending:
                    widgets.select_corpus(None)
                st.session_state[keys.FLASH] = f"Corpus #{pending} deleted."
                st.rerun()
