"""The Run page's controls for the goal-driven modes (``corpusmap.modes``): seed labels and
must-link / cannot-link pairs that steer the clustering, the hierarchy and the keyword rules.

Each function draws its widgets and returns plain values for ``ModeOptions``; a problem with
an uploaded file is shown where the file was dropped and reported as ``invalid`` so the page
can refuse to start."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from clustering.constraints import ConstraintError, parse_pairs
from storage import CorpusInfo
from ui import keys

NO_COLUMN = "(none)"
SEED_ROWS_SHOWN = 30
"""Texts listed at once in the seed editor (a search narrows them)."""


@dataclass(frozen=True)
class Steering:
    seed_label_column: str | None = None
    seed_labels: tuple[tuple[int, str], ...] = ()
    must_link: tuple[tuple[int, int], ...] = ()
    cannot_link: tuple[tuple[int, int], ...] = ()
    invalid: bool = False


@dataclass(frozen=True)
class GoalVectors:
    instruction: str = ""
    expand_keyphrases: bool = False


@dataclass(frozen=True)
class Structure:
    hierarchy: bool = False
    n_parents: int | None = None
    k_method: str = "silhouette"
    rules: bool = True


def steering_controls(corpus: CorpusInfo, texts: list[str]) -> Steering:
    """Seed labels (a column, or labels typed beside chosen texts) and row-number pairs."""
    typed: dict[int, str] = st.session_state.setdefault(keys.SEED_LABELS, {})
    label = "Steer with seed labels and pairs" + (f" ({len(typed)} typed)" if typed else "")
    with st.expander(label, expanded=bool(typed)):
        st.caption(
            "A few known labels or pairs of texts that belong together (or apart) steer the "
            "clustering; clusters with no seeded text are marked as new."
        )
        columns = [NO_COLUMN, *[c for c in corpus.columns if c != corpus.text_column]]
        column = st.selectbox(
            "Seed label column",
            columns,
            help="A partly filled column: rows with a value are seeds, empty cells are free.",
        )
        seed_editor(texts, typed)
        must, bad_must = pair_upload("Must-link pairs", "must_link")
        cannot, bad_cannot = pair_upload("Cannot-link pairs", "cannot_link")
    return Steering(
        seed_label_column=None if column == NO_COLUMN else column,
        seed_labels=tuple(sorted(typed.items())),
        must_link=must,
        cannot_link=cannot,
        invalid=bad_must or bad_cannot,
    )


def seed_editor(texts: list[str], typed: dict[int, str]) -> None:
    """Find texts, type their labels; labels persist across searches in ``typed``."""
    st.markdown("**Label some texts yourself**")
    query = st.text_input(
        "Find texts to label", placeholder="e.g. refund", help="Texts containing these characters."
    ).strip()
    needle = query.casefold()
    rows = [i for i, t in enumerate(texts) if t and needle in t.casefold()][:SEED_ROWS_SHOWN]
    frame = pd.DataFrame(
        {
            "row": rows,
            "text": [" ".join(texts[i].split())[:300] for i in rows],
            "seed label": [typed.get(i, "") for i in rows],
        }
    )
    edited = st.data_editor(
        frame,
        key=f"seed_editor:{query}",
        hide_index=True,
        disabled=["row", "text"],
        column_config={
            "row": st.column_config.NumberColumn("row", help="0-based input row", width="small"),
            "seed label": st.column_config.TextColumn("seed label", help="Empty = free."),
        },
    )
    for row, value in zip(edited["row"], edited["seed label"], strict=True):
        value = "" if value is None or pd.isna(value) else str(value).strip()
        if value:
            typed[int(row)] = value
        else:
            typed.pop(int(row), None)
    if typed:
        classes = len(set(typed.values()))
        left, right = st.columns([3, 1])
        left.caption(f"{len(typed)} texts labelled by hand, {classes} classes.")
        if right.button("Clear typed labels"):
            typed.clear()
            st.rerun()


def pair_upload(title: str, key: str) -> tuple[tuple[tuple[int, int], ...], bool]:
    """Pairs from an uploaded CSV of two 0-based row numbers a line; (pairs, invalid)."""
    upload = st.file_uploader(
        f"{title} (CSV)",
        type=["csv", "txt"],
        key=f"pairs_{key}",
        help="Two row numbers a line (0-based, input order), a header line allowed.",
    )
    if upload is None:
        return (), False
    try:
        text = upload.getvalue().decode("utf-8")
        pairs = parse_pairs(text, upload.name)
    except (UnicodeDecodeError, ConstraintError) as err:
        st.error(f"{title}: {err}", icon=":material/error:")
        return (), True
    st.caption(f"{title}: {len(pairs):,} pairs.")
    return tuple((int(a), int(b)) for a, b in pairs), False


def structure_controls() -> Structure:
    """The two-level hierarchy and the per-cluster keyword rules."""
    with st.expander("Hierarchy and rules"):
        hierarchy = st.toggle(
            "Group clusters into parents",
            help="A two-level hierarchy; parents are named like clusters. With an LLM, a few "
            "pairwise questions choose how many parents.",
        )
        left, right = st.columns(2)
        n_parents = left.number_input(
            "Parents (0 = automatic)", min_value=0, max_value=500, value=0, disabled=not hierarchy
        )
        k_method = right.radio(
            "Automatic number of parents by",
            ["silhouette", "stability"],
            horizontal=True,
            disabled=not hierarchy or bool(n_parents),
            help="Silhouette of the parent partition, or its stability under resampling.",
        )
        rules = st.toggle(
            "Keyword rules",
            value=True,
            help="Per cluster a short rule on keywords (a depth ≤ 3 tree, cluster against the "
            "rest) with its precision and recall, shown beside the explanation.",
        )
    return Structure(hierarchy, int(n_parents) or None, str(k_method), rules)


def goal_vector_controls() -> GoalVectors:
    """An instruction prefix for encoders trained with one, and LLM keyphrase expansion."""
    with st.expander("Embeddings that follow the goal"):
        instruction = st.text_area(
            "Instruction prefix (optional)",
            height=68,
            placeholder="Instruct: {goal}\nQuery: ",
            help="Each text is embedded as this prefix + the text; {goal} becomes the goal. For "
            "encoders trained with instructions (E5-instruct, GTE-Qwen, ...), set as the embedding "
            "model; the bundled all-MiniLM-L6-v2 takes none. Free, and cached per model and prefix.",
        )
        expand = st.toggle(
            "LLM keyphrase expansion",
            help="The LLM rewrites each distinct text into keyphrases about the goal (16 texts a "
            "call) and the text is embedded with them. Needs an LLM (below); its calls are planned "
            "first and cached, so a second run costs nothing.",
        )
    return GoalVectors(instruction.strip("\n"), expand)
