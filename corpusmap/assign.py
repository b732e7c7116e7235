"""New texts into a stored run, without refitting it.

Each new text is embedded with the run's own embedder (through the embedding cache) and sent
to the nearest cluster centroid in embedding space (cosine). A text less similar to that
centroid than the run's own members usually are (``MEMBER_PERCENTILE``: below the 5th
percentile of every member's similarity to its own centroid) fits no cluster and gets ``-1``.
Its probability is the share of the chosen cluster's members that are no more typical than
it (the empirical distribution of their similarities): 0.5 is a median member.

Why the centroid and not the stored UMAP/HDBSCAN models: a run stores its assignment, not its
fitted reducer and clusterer (pickles in the database would tie every run to library
versions); the centroids of the stored assignment are the run's clusters as it shows them, and
cluster summaries, faithfulness and neighbours are built on the same centroids.

``drift_report`` says how the shares moved and clusters the unassigned texts among
themselves (HDBSCAN, as a run does) into proposed new groups named by their
c-TF-IDF keywords. The stored run is never written; ``save_as_run`` stores the old and the new
rows as a new corpus and a new run whose clusters keep the old run's names.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.cluster import HDBSCAN

from clustering import read_corpus
from clustering.ingest import read_corpus_bytes
from clustering.keywords import class_tfidf
from clustering.pipeline import measure
from clustering.summarize import summarize_clusters
from clustering.types import NOISE, Assignment, Corpus
from corpusmap import service
from corpusmap.errors import CorpusmapError
from storage import Store

log = logging.getLogger(__name__)

__all__ = [
    "DriftReport",
    "Placement",
    "drift_report",
    "place_bytes",
    "place_corpus",
    "place_file",
    "place_texts",
    "save_as_run",
]

MEMBER_PERCENTILE = 5.0
"""A new text joins a cluster when it is at least as similar to the centroid as the least
typical 95% of the run's members are to theirs."""
NEW_GROUP_MIN_SIZE = 5
"""Unassigned texts form a proposed new group from this many on."""
NEW_GROUP_MIN_SAMPLES = 3
"""HDBSCAN's ``min_samples`` for the new groups (see ``_new_groups`` for the measurements)."""
NEW_GROUP_KEYWORDS = 4
NAMING_SAMPLE = 20_000
"""Run texts (a seeded sample) that new groups' keywords are contrasted with."""
MAP_NEIGHBOURS = 5
"""A saved new text is drawn on the map at the mean position of its nearest stored members."""
OUTPUT_COLUMNS = ("cluster_id", "cluster_label", "cluster_probability", "similarity",
                  "new_group", "new_group_name")  # fmt: skip


class AssignError(CorpusmapError):
    """New texts that cannot be placed into the run."""


@dataclass(frozen=True)
class Placement:
    """New rows placed into a stored run; ``frame`` holds every input row in input order with
    its columns plus ``OUTPUT_COLUMNS`` (empty texts: -1, probability 0)."""

    run_id: int
    corpus: Corpus
    frame: pd.DataFrame
    threshold: float
    vectors: np.ndarray = field(repr=False)
    """Embeddings of the non-empty new texts, in ``corpus.nonempty_index`` order."""

    @property
    def labels(self) -> np.ndarray:
        """Cluster id of every non-empty new text."""
        return self.frame["cluster_id"].to_numpy(np.int64)[self.corpus.nonempty_index]


@dataclass(frozen=True)
class DriftReport:
    shares: pd.DataFrame
    """cluster_id, name, share_before (in the stored run), share_new (of the new texts),
    change, count_new; outliers as cluster -1."""
    new_groups: pd.DataFrame
    """group, size, name (keywords), examples: unassigned texts grouped among themselves."""
    n_new: int
    n_unassigned: int

    def lines(self) -> list[str]:
        """The report in a few sentences."""
        out = [
            f"{self.n_new:,} new texts: {self.n_new - self.n_unassigned:,} placed into existing "
            f"clusters, {self.n_unassigned:,} ({self.n_unassigned / max(self.n_new, 1):.0%}) fit none."
        ]
        moved = self.shares[self.shares["cluster_id"] != NOISE]
        for _, row in (
            moved.reindex(moved["change"].abs().sort_values(ascending=False).index)
            .head(3)
            .iterrows()
        ):
            if abs(row["change"]) >= 0.01:
                out.append(
                    f"cluster {row['cluster_id']} {row['name']}: {row['share_before']:.1%} of the "
                    f"run, {row['share_new']:.1%} of the new texts"
                )
        if len(self.new_groups):
            names = "; ".join(f"{r.name} ({r.size})" for r in self.new_groups.itertuples())
            out.append(
                f"{len(self.new_groups)} possible new group(s) among the unassigned: {names}"
            )
        elif self.n_unassigned:
            out.append("the unassigned texts form no group of their own")
        return out


@dataclass(frozen=True)
class _RunSpace:
    cluster_ids: np.ndarray
    centroids: np.ndarray
    member_similarity: dict[int, np.ndarray]
    """Sorted similarities of each cluster's members to their centroid."""
    threshold: float
    vectors: np.ndarray
    labels: np.ndarray
    coords: np.ndarray
    texts: list[str]


def _run_space(store: Store, run_id: int, percentile: float) -> _RunSpace:
    run = store.get_run(run_id)
    stored = store.load_assignments(run_id)
    labels = stored["cluster_id"].to_numpy(np.int64)
    ids = np.array(sorted(int(c) for c in np.unique(labels) if c != NOISE), dtype=np.int64)
    if not len(ids):
        raise AssignError(f"run #{run_id} has no clusters to place texts into")
    vectors = service.run_vectors(store, run, stored["text"].tolist())
    centres = []
    member_similarity = {}
    for c in ids:
        mean = vectors[labels == c].mean(axis=0)
        centre = mean / max(float(np.linalg.norm(mean)), 1e-12)
        centres.append(centre)
        member_similarity[int(c)] = np.sort(vectors[labels == c] @ centre)
    all_members = np.concatenate(list(member_similarity.values()))
    threshold = float(np.percentile(all_members, percentile))
    return _RunSpace(
        ids,
        np.vstack(centres).astype(np.float32),
        member_similarity,
        threshold,
        vectors,
        labels,
        stored[["x", "y"]].to_numpy(np.float64),
        stored["text"].tolist(),
    )


def place_corpus(
    store: Store,
    run_id: int,
    corpus: Corpus,
    *,
    threshold: float | None = None,
    percentile: float = MEMBER_PERCENTILE,
) -> Placement:
    """Place every non-empty text of ``corpus`` into the run's clusters (``threshold``, a
    cosine similarity, overrides the one calibrated on the run's members)."""
    run = store.get_run(run_id)
    space = _run_space(store, run_id, percentile)
    cut = space.threshold if threshold is None else float(threshold)
    index = corpus.nonempty_index
    texts = [corpus.texts[i] for i in index]
    if not texts:
        raise AssignError("every new text is empty; choose the column that holds the texts")
    vectors = service.run_vectors(store, run, texts)
    similarity = vectors @ space.centroids.T
    best = similarity.argmax(axis=1)
    best_similarity = similarity[np.arange(len(texts)), best]
    chosen = space.cluster_ids[best]
    fits = best_similarity >= cut
    probability = np.array(
        [
            np.searchsorted(space.member_similarity[int(c)], s, side="right")
            / len(space.member_similarity[int(c)])
            for c, s in zip(chosen, best_similarity, strict=True)
        ]
    )
    labels = np.where(fits, chosen, NOISE)
    probability = np.where(fits, probability, 0.0)
    names = {c.cluster_id: c.name for c in store.load_clusters(run_id)}
    frame = corpus.frame.copy().reset_index(drop=True)
    for column in OUTPUT_COLUMNS:
        if column in frame.columns:
            frame = frame.drop(columns=column)
    cluster_id = np.full(corpus.n_rows, NOISE, dtype=np.int64)
    cluster_id[index] = labels
    prob = np.zeros(corpus.n_rows)
    prob[index] = probability
    sim = np.full(corpus.n_rows, np.nan)
    sim[index] = best_similarity
    frame["cluster_id"] = cluster_id
    frame["cluster_label"] = [
        names.get(int(c), "outlier" if c == NOISE else "") for c in cluster_id
    ]
    frame["cluster_probability"] = prob
    frame["similarity"] = sim
    groups = _new_groups(vectors[~fits], space.threshold)
    new_group = np.full(corpus.n_rows, NOISE, dtype=np.int64)
    new_group[index[~fits]] = groups
    keywords = _group_keywords(
        [t for t, f in zip(texts, fits, strict=True) if not f], groups, space
    )
    frame["new_group"] = new_group
    frame["new_group_name"] = [
        ", ".join(keywords.get(int(g), ())) if g != NOISE else "" for g in new_group
    ]
    log.info(
        "placed %d new texts into run #%d: %d fit no cluster (threshold %.3f), %d new groups",
        len(texts),
        run_id,
        int((~fits).sum()),
        cut,
        len(keywords),
    )
    return Placement(run_id, corpus, frame, cut, vectors)


def _group_keywords(
    texts: list[str], groups: np.ndarray, space: _RunSpace
) -> dict[int, tuple[str, ...]]:
    """c-TF-IDF keywords of each new group against the run's own clusters (a group alone has
    nothing to be distinctive against: ``class_tfidf`` gives it no keyword)."""
    if not (groups != NOISE).any():
        return {}
    offset = int(groups.max()) + 1
    rng = np.random.default_rng(0)
    sample = np.arange(len(space.texts))
    if len(sample) > NAMING_SAMPLE:
        sample = np.sort(rng.choice(sample, NAMING_SAMPLE, replace=False))
    run_labels = space.labels[sample]
    labels = np.concatenate([groups, np.where(run_labels == NOISE, NOISE, run_labels + offset)])
    all_texts = texts + [space.texts[i] for i in sample]
    found = class_tfidf(all_texts, labels, NEW_GROUP_KEYWORDS)
    return {g: words for g, words in found.items() if g < offset}


def _as_tight_as_a_cluster(vectors: np.ndarray, member_threshold: float) -> bool:
    mean = vectors.mean(axis=0)
    centre = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return bool(np.all(vectors @ centre >= member_threshold))


def _new_groups(vectors: np.ndarray, member_threshold: float) -> np.ndarray:
    """Groups among the unassigned texts: HDBSCAN on their unit vectors (Euclidean distance
    between unit vectors orders pairs as cosine does), largest group 0, the rest -1.

    Measured on a Banking77 run (25 intents) with its 7 unassigned held-back queries plus 30
    extra texts: a fixed bar (average linkage stopping at the square of the run's median member
    similarity) grouped none of 30 StackOverflow titles about Haskell, the short banking
    queries set it far too high; HDBSCAN with ``min_samples`` = min_cluster_size found none of
    them either on so few points; ``min_samples=NEW_GROUP_MIN_SAMPLES`` put 26 of the 30 into
    two groups with no banking query, 30 mixed AG News items into none, and the 7 stray banking
    queries alone into none. ``allow_single_cluster`` made those 7 a "group": left off."""
    labels = np.full(len(vectors), NOISE, dtype=np.int64)
    if len(vectors) < NEW_GROUP_MIN_SIZE:
        return labels
    model = HDBSCAN(
        min_cluster_size=NEW_GROUP_MIN_SIZE, min_samples=NEW_GROUP_MIN_SAMPLES, copy=True
    )
    raw = model.fit_predict(vectors)
    if (raw == NOISE).all() and _as_tight_as_a_cluster(vectors, member_threshold):
        # HDBSCAN never returns all points as one cluster: six near-identical new texts were
        # "no group". One group when every text is as close to their centre as the run's
        # members are to theirs (the 7 stray banking queries above are not).
        raw = np.zeros(len(vectors), dtype=np.int64)
    sizes = pd.Series(raw[raw != NOISE]).value_counts()
    for new_id, g in enumerate(sizes.index):  # largest first
        labels[raw == g] = new_id
    return labels


def place_texts(store: Store, run_id: int, texts: list[str], **options: float) -> Placement:
    """``place_corpus`` for a plain list of texts (column ``text``)."""
    frame = pd.DataFrame({"text": texts})
    corpus = Corpus(
        name="new texts",
        frame=frame,
        text_column="text",
        texts=[" ".join(str(t).split()) for t in texts],
    )
    return place_corpus(store, run_id, corpus, **options)


def place_file(
    store: Store,
    run_id: int,
    source: str | Path,
    *,
    text_column: str | None = None,
    **options: float,
) -> Placement:
    """``place_corpus`` for a corpus file (any format ``corpusmap run`` reads)."""
    return place_corpus(store, run_id, read_corpus(source, text_column=text_column), **options)


def place_bytes(
    store: Store,
    run_id: int,
    data: bytes,
    filename: str,
    *,
    text_column: str | None = None,
    **options: float,
) -> Placement:
    """``place_corpus`` for the bytes of an uploaded file called ``filename``."""
    corpus = read_corpus_bytes(data, filename, text_column=text_column)
    return place_corpus(store, run_id, corpus, **options)


def drift_report(store: Store, placement: Placement) -> DriftReport:
    """How the new texts' shares compare with the run's, and the groups the unassigned form."""
    clusters = store.load_clusters(placement.run_id)
    stored = store.load_assignments(placement.run_id)["cluster_id"].to_numpy(np.int64)
    new = placement.labels
    ids = [NOISE, *[c.cluster_id for c in clusters]]
    names = {c.cluster_id: c.name for c in clusters} | {NOISE: "outliers / fits no cluster"}
    shares = pd.DataFrame(
        {
            "cluster_id": ids,
            "name": [names[c] for c in ids],
            "share_before": [float(np.mean(stored == c)) if len(stored) else 0.0 for c in ids],
            "share_new": [float(np.mean(new == c)) if len(new) else 0.0 for c in ids],
            "count_new": [int(np.sum(new == c)) for c in ids],
        }
    )
    shares["change"] = shares["share_new"] - shares["share_before"]
    frame = placement.frame.iloc[placement.corpus.nonempty_index]
    grouped = frame[frame["new_group"] != NOISE]
    text_column = placement.corpus.text_column
    rows = []
    for g, members in grouped.groupby("new_group"):
        rows.append(
            {
                "group": int(g),
                "size": len(members),
                "name": members["new_group_name"].iloc[0],
                "examples": " | ".join(str(t)[:120] for t in members[text_column].head(3)),
            }
        )
    groups = pd.DataFrame(rows, columns=["group", "size", "name", "examples"])
    return DriftReport(shares, groups, len(new), int(np.sum(new == NOISE)))


def save_as_run(store: Store, placement: Placement, *, name: str = "") -> int:
    """Store the run's rows and the placed new rows as a new corpus and a new completed run
    (clusters keep the old run's ids and names; new texts drawn among their nearest members).
    The old run and its corpus are left as they were. Returns the new run's id."""
    old = store.get_run(placement.run_id)
    old_corpus = store.load_corpus(old.corpus_id)
    stored = store.load_assignments(placement.run_id)
    new_corpus = placement.corpus
    frame = pd.concat(
        [old_corpus.frame.rename(columns={old_corpus.text_column: "text"}),
         new_corpus.frame.rename(columns={new_corpus.text_column: "text"})],
        ignore_index=True,
    )  # fmt: skip
    texts = [*old_corpus.texts, *new_corpus.texts]
    frame["text"] = texts
    combined = Corpus(
        name=f"{old_corpus.name} + {new_corpus.name}",
        frame=frame.astype(object).where(frame.notna(), None),
        text_column="text",
        texts=texts,
        format=old_corpus.format,
    )
    info = store.add_corpus(combined)
    doc_ids = store.document_ids(info.id)
    old_positions = stored["position"].to_numpy(np.int64)
    new_positions = old_corpus.n_rows + new_corpus.nonempty_index
    space = _run_space(store, placement.run_id, MEMBER_PERCENTILE)
    nearest = np.argsort(-(placement.vectors @ space.vectors.T), axis=1)[:, :MAP_NEIGHBOURS]
    new_coords = space.coords[nearest].mean(axis=1)
    positions = np.concatenate([old_positions, new_positions])
    order = np.argsort(positions, kind="stable")
    labels = np.concatenate([space.labels, placement.labels])[order]
    probabilities = np.concatenate(
        [stored["probability"].to_numpy(np.float64),
         placement.frame["cluster_probability"].to_numpy(np.float64)[new_corpus.nonempty_index]]
    )[order]  # fmt: skip
    coords = np.vstack([space.coords, new_coords])[order]
    vectors = np.vstack([space.vectors, placement.vectors])[order]
    all_texts = [texts[p] for p in positions[order]]
    run_id = store.create_run(
        info.id,
        config={**old.config, "assigned_from_run": old.id},
        seed=old.seed,
        embedder=old.embedder,
        labeler=old.labeler,
        mode=old.mode,
        goal=old.goal,
        label_column=old.label_column,
        versions=service.package_versions(),
        name=name or f"run {old.id} + {new_corpus.name}",
        owner=service.process_owner(),
    )
    try:
        assignment = Assignment(labels, probabilities)
        store.save_assignment(run_id, doc_ids[positions[order]], assignment, coords)
        summaries = summarize_clusters(all_texts, vectors, assignment, goal=old.goal or None)
        old_labels = {c.cluster_id: c.label() for c in store.load_clusters(old.id)}
        store.save_clusters(
            run_id,
            summaries,
            [old_labels[s.cluster_id] for s in summaries if s.cluster_id in old_labels],
        )
        metrics = {k: v for k, v in measure(coords, labels, None).items() if v is not None}
        metrics["assigned_from_run"] = old.id
        store.save_metrics(run_id, metrics)
        store.finish_run(run_id)
    except BaseException as err:
        store.fail_run(run_id, f"{type(err).__name__}: {err}")
        raise
    log.info(
        "saved run #%d: run #%d plus %d new texts", run_id, old.id, len(new_corpus.nonempty_index)
    )
    return run_id
