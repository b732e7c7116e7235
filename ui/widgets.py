"""Widgets shared by pages: the sidebar pickers, the current corpus and run, confirmations."""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from typing import Any

import streamlit as st

from corpusmap import workspace
from storage import CorpusInfo, NotFoundError, RunInfo, Store, redact
from ui import keys, resources

_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=&])")

PAGES = {
    "corpus": "pages/corpus.py",
    "run": "pages/run.py",
    "explore": "pages/explore.py",
    "edit": "pages/edit.py",
    "export": "pages/export.py",
    "history": "pages/history.py",
    "evaluation": "pages/evaluation.py",
    "lens": "pages/lens.py",
    "team": "pages/team.py",
}


def current_corpus(store: Store) -> CorpusInfo | None:
    """The corpus chosen in this session, else the newest stored one."""
    corpus_id = st.session_state.get(keys.CORPUS_ID)
    if corpus_id is not None:
        try:
            return store.get_corpus(corpus_id)
        except NotFoundError:
            st.session_state.pop(keys.CORPUS_ID, None)
    corpora = store.list_corpora()
    return corpora[0] if corpora else None


def current_run(store: Store) -> RunInfo | None:
    """The run chosen in this session, else the newest completed run of the current corpus."""
    run_id = st.session_state.get(keys.RUN_ID)
    if run_id is not None:
        try:
            return store.get_run(run_id)
        except NotFoundError:
            st.session_state.pop(keys.RUN_ID, None)
    corpus = current_corpus(store)
    runs = [r for r in store.list_runs(corpus.id if corpus else None) if r.status == "completed"]
    return runs[0] if runs else None


def select_corpus(corpus_id: int | None) -> None:
    st.session_state[keys.CORPUS_ID] = corpus_id
    if corpus_id is None:
        st.session_state.pop(keys.RUN_ID, None)
        return
    run = st.session_state.get(keys.RUN_ID)
    store = resources.store()
    if run is not None:
        try:
            if store.get_run(run).corpus_id != corpus_id:
                st.session_state.pop(keys.RUN_ID, None)
        except NotFoundError:
            st.session_state.pop(keys.RUN_ID, None)


def select_run(run_id: int | None) -> None:
    st.session_state[keys.RUN_ID] = run_id
    if run_id is not None:
        st.session_state[keys.CORPUS_ID] = resources.store().get_run(run_id).corpus_id


def corpus_title(info: CorpusInfo) -> str:
    return f"#{info.id} {info.name} ({info.n_rows - info.n_empty:,} texts)"


def run_title(run: RunInfo) -> str:
    k = run.metrics.get("n_clusters")
    clusters = f", {k} clusters" if k is not None else ""
    name = f" {run.name}" if run.name else ""
    return f"run {run.id}{name} ({run.status}{clusters}, {run.labeler})"


def sidebar(store: Store) -> None:
    """Which corpus and run every page works on, and where the data lives."""
    with st.sidebar:
        corpora = store.list_corpora()
        corpus = current_corpus(store)
        if corpora:
            ids = [c.id for c in corpora]
            titles = {c.id: corpus_title(c) for c in corpora}
            # Keep the widget in step with the state a page may have set since the last run.
            st.session_state[keys.SIDEBAR_CORPUS] = corpus.id if corpus else ids[0]
            st.selectbox(
                "Corpus",
                ids,
                format_func=titles.get,
                key=keys.SIDEBAR_CORPUS,
                on_change=lambda: select_corpus(st.session_state[keys.SIDEBAR_CORPUS]),
            )
            corpus = current_corpus(store)
        runs = [r for r in store.list_runs(corpus.id if corpus else None) if r.status != "running"]
        run = current_run(store)
        if runs:
            ids = [r.id for r in runs]
            titles = {r.id: run_title(r) for r in runs}
            st.session_state[keys.SIDEBAR_RUN] = run.id if run and run.id in ids else ids[0]
            st.selectbox(
                "Run",
                ids,
                format_func=titles.get,
                key=keys.SIDEBAR_RUN,
                on_change=lambda: select_run(st.session_state[keys.SIDEBAR_RUN]),
            )
        active = resources.run_registry().active(store.access)
        if active:
            st.info(f"{len(active)} run(s) in progress", icon=":material/hourglass_top:")
        if resources.allows("admin"):
            st.caption(f"Database: `{redact(store.url)}`")


LINKS = ("corpus", "run")
"""Query parameters that open a corpus or a run: ``/explore?run=12``, ``/run?corpus=3``."""


def follow_links(store: Store) -> None:
    """Make the corpus or run a link names (``?corpus=N``, ``?run=N``) the current one, once:
    the parameter is then dropped, so the sidebar's choice counts afterwards. An id this user
    cannot see gets the store's own sentence, the same whether the object is missing or, in
    team mode, another workspace's."""
    for name in LINKS:
        value = st.query_params.get(name)
        if value is None:
            continue
        del st.query_params[name]
        try:
            object_id = int(value)
        except ValueError:
            st.error(f"no {name} “{plain(value)}”: a {name} is named by its number")
            continue
        try:
            if name == "run":
                select_run(store.get_run(object_id).id)
            else:
                select_corpus(store.get_corpus(object_id).id)
        except NotFoundError as err:
            st.error(str(err), icon=":material/search_off:")


def need_corpus(store: Store) -> CorpusInfo:
    corpus = current_corpus(store)
    if corpus is None:
        st.info("No corpus yet: upload one first.", icon=":material/upload_file:")
        st.page_link(PAGES["corpus"], label="Go to Corpus", icon=":material/upload_file:")
        st.stop()
    return corpus


def need_run(store: Store) -> RunInfo:
    run = current_run(store)
    if run is None:
        st.info("No finished run yet: start one on the Run page.", icon=":material/play_arrow:")
        st.page_link(PAGES["run"], label="Go to Run", icon=":material/play_arrow:")
        st.stop()
    if run.status != "completed":
        st.warning(f"Run {run.id} is {run.status} (stage {run.stage}): it may be incomplete.")
    return run


def run_warnings(run: RunInfo) -> None:
    """What the user should know about a run's input (long texts cut at the model's window,
    other languages, ragged rows): one warning each, shown as plain text."""
    for warning in run.warnings:
        st.warning(plain(warning), icon=":material/warning:")


def flash() -> None:
    """Show the message an action left for this page load."""
    message = st.session_state.pop(keys.FLASH, None)
    if message:
        st.success(message, icon=":material/check_circle:")


def confirm(key: str, prompt: str, action_label: str) -> bool:
    """Two-step confirmation: the caller's button sets ``key``; this asks, True on yes."""
    if not st.session_state.get(key):
        return False
    st.warning(prompt, icon=":material/warning:")
    yes, no = st.columns(2)
    if no.button("Cancel", key=f"{key}_no"):
        st.session_state.pop(key, None)
        st.rerun()
    if yes.button(action_label, key=f"{key}_yes", type="primary"):
        st.session_state.pop(key, None)
        return True
    return False


def plain(text: str) -> str:
    """Text for st.markdown that shows as itself: every markdown character backslash-escaped,
    so corpus texts and LLM output can never format, link or inject anything."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", text)


def labelled_text(label: str, text: str) -> None:
    """A constant bold label over untrusted text shown verbatim (no markdown, no HTML)."""
    st.markdown(f"**{label}**")
    st.text(text)


def shortened(texts: list[str], limit: int = 400) -> list[str]:
    """Texts with whitespace collapsed, each cut to ``limit`` characters."""
    result = []
    for text in texts:
        short = " ".join(text.split())
        result.append(short if len(short) <= limit else short[: limit - 1] + "…")
    return result


def export_button(
    place: Any,
    label: str,
    data: Callable[[], bytes],
    *,
    run_id: int,
    fmt: str,
    what: str,
    **options: Any,
) -> None:
    """A download of a run's data (built when clicked) that leaves a line in the audit trail:
    who exported which run, what and in which format. ``place`` is ``st`` or a column."""
    place.download_button(
        label, data=data, on_click=_record_export, args=(run_id, fmt, what), **options
    )


def _record_export(run_id: int, fmt: str, what: str) -> None:
    workspace.record_export(resources.store(), run_id, fmt, what)


def names_key(titles: dict[Any, Any]) -> int:
    """A short key of what a widget's options are called: part of the widget's key, so the
    widget is made anew when a name changes (a keyed widget keeps its first labels in the
    browser: a merged cluster showed its name from before the merge)."""
    return zlib.crc32(repr(sorted(titles.items(), key=repr)).encode())


def cluster_picker(
    label: str, options: list[int], title: Callable[[int], Any], key: str
) -> int | None:
    """A selectbox of clusters that shows their current names (``names_key``); the choice is
    carried over by value from one version of the widget to the next."""
    chosen = st.session_state.get(f"{key}_chosen")
    index = options.index(chosen) if chosen in options else (0 if options else None)
    names = names_key({c: title(c) for c in options})
    value = st.selectbox(label, options, index=index, format_func=title, key=f"{key}_{names}")
    st.session_state[f"{key}_chosen"] = value
    return value
