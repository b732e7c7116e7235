"""Keyword rules that explain clusters: for each cluster, a depth ≤ 3 decision tree on binary
"the text contains word w" features separates it from the rest (one-vs-rest, after ExKMC's
idea of short threshold trees), and is read back as a rule with its precision and recall.
A plain disjunction of up to three words ("visa" or "mastercard"), grown greedily for F1 with
precision kept at 0.5 or more, is tried too; the rule with the higher F1 is kept. On 800
Banking77 texts in 37 clusters that raised the mean F1 from 0.63 to 0.75 (precision 0.86 →
0.81, recall 0.60 → 0.72).

A rule is a check a reader can run by hand, so it sits beside the LLM's explanation: where
the two disagree, the rule's precision and recall say how far the keywords alone go.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from clustering.types import NOISE

MAX_DEPTH = 3
MAX_FEATURES = 3000
MIN_DF = 2
MIN_LEAF_PRECISION = 0.5
"""A leaf joins the rule only if most of its texts are in the cluster."""
MAX_TERMS = 3
"""Words in a disjunction rule."""
MIN_LEAF_SHARE = 0.002
"""A leaf holds at least this share of the texts: no rule for a single odd text."""


@dataclass(frozen=True)
class ClusterRule:
    cluster_id: int
    clauses: tuple[tuple[tuple[str, bool], ...], ...]
    """OR of ANDs: each clause is a tuple of (word, present?) conditions."""
    precision: float
    recall: float
    support: int
    """Texts of the cluster."""

    @property
    def text(self) -> str:
        if not self.clauses:
            return "(no keyword rule)"
        parts = []
        for clause in self.clauses:
            terms = [f"“{w}”" if present else f"not “{w}”" for w, present in clause]
            parts.append(" and ".join(terms))
        return " or ".join(f"({p})" if len(self.clauses) > 1 and " and " in p else p for p in parts)

    @property
    def n_conditions(self) -> int:
        return sum(len(clause) for clause in self.clauses)

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.text,
            "rule_precision": round(self.precision, 4),
            "rule_recall": round(self.recall, 4),
        }


def keyword_matrix(texts: Sequence[str]) -> tuple[Any, np.ndarray]:
    """Binary word-presence features (stop words out, words in at least ``MIN_DF`` texts)."""
    from sklearn.feature_extraction.text import CountVectorizer

    for stop_words, min_df in (("english", MIN_DF), (None, 1)):
        try:
            vectorizer = CountVectorizer(
                binary=True, stop_words=stop_words, min_df=min_df, max_features=MAX_FEATURES
            )
            matrix = vectorizer.fit_transform(texts)
            return matrix, vectorizer.get_feature_names_out()
        except ValueError:
            # Empty vocabulary (every word a stop word, or too rare): loosen and try again.
            continue
    return None, np.array([], dtype=object)


def explain_clusters(
    texts: Sequence[str], labels: np.ndarray, *, max_depth: int = MAX_DEPTH, random_state: int = 0
) -> dict[int, ClusterRule]:
    """One rule per cluster (noise excluded); precision and recall are on these texts."""
    from sklearn.tree import DecisionTreeClassifier

    labels = np.asarray(labels)
    ids = sorted(int(c) for c in np.unique(labels) if c != NOISE)
    matrix, words = keyword_matrix(list(texts))
    rules: dict[int, ClusterRule] = {}
    for c in ids:
        target = labels == c
        support = int(target.sum())
        if matrix is None or not len(words):
            rules[c] = ClusterRule(c, (), 0.0, 0.0, support)
            continue
        tree = DecisionTreeClassifier(
            max_depth=max_depth,
            class_weight="balanced",
            min_samples_leaf=max(1, int(MIN_LEAF_SHARE * len(labels))),
            random_state=random_state,
        ).fit(matrix, target)
        leaves = tree.apply(matrix)
        chosen = precise_leaves(leaves, target)
        clauses = positive_paths(tree, words, chosen)
        predicted = np.isin(leaves, list(chosen)) if clauses else np.zeros(len(labels), bool)
        tree_rule = scored_rule(c, clauses, predicted, target)
        terms = keyword_disjunction(matrix, target)
        any_rule = scored_rule(
            c,
            tuple(((str(words[w]), True),) for w in terms),
            np.asarray(matrix[:, terms].sum(axis=1)).ravel() > 0,
            target,
        )
        # The better F1 wins; on a tie, the shorter rule.
        rules[c] = max((tree_rule, any_rule), key=lambda r: (round(r.f1, 6), -r.n_conditions))
    return rules


def scored_rule(
    cluster_id: int,
    clauses: tuple[tuple[tuple[str, bool], ...], ...],
    predicted: np.ndarray,
    target: np.ndarray,
) -> ClusterRule:
    """A rule with its precision and recall on the texts it was found on."""
    support = int(target.sum())
    if not clauses:
        return ClusterRule(cluster_id, (), 0.0, 0.0, support)
    hits = int((predicted & target).sum())
    precision = hits / int(predicted.sum()) if predicted.any() else 0.0
    recall = hits / support if support else 0.0
    return ClusterRule(cluster_id, clauses, precision, recall, support)


def keyword_disjunction(matrix: Any, target: np.ndarray, max_terms: int = MAX_TERMS) -> list[int]:
    """Columns of up to ``max_terms`` words whose "any of them" best picks out ``target`` (F1),
    added one at a time while F1 grows and precision stays at least ``MIN_LEAF_PRECISION``."""
    matrix = matrix.tocsr()
    n_pos = int(target.sum())
    covered = np.zeros(len(target), bool)
    terms: list[int] = []
    tp = fp = 0
    best = 0.0
    for _ in range(max_terms):
        free = ~covered
        new_tp = np.asarray(matrix[free & target].sum(axis=0)).ravel()
        new_fp = np.asarray(matrix[free & ~target].sum(axis=0)).ravel()
        f1 = (
            2
            * (tp + new_tp)
            / np.maximum(2 * (tp + new_tp) + (fp + new_fp) + (n_pos - tp - new_tp), 1)
        )
        precise = (tp + new_tp) >= MIN_LEAF_PRECISION * np.maximum(tp + new_tp + fp + new_fp, 1)
        f1 = np.where(precise, f1, 0.0)
        word = int(np.argmax(f1))
        if f1[word] <= best or new_tp[word] == 0:
            break
        terms.append(word)
        best = float(f1[word])
        tp, fp = tp + int(new_tp[word]), fp + int(new_fp[word])
        covered |= np.asarray(matrix[:, word].todense()).ravel() > 0
    return terms


def precise_leaves(leaves: np.ndarray, target: np.ndarray) -> set[int]:
    """Leaves where most texts (unweighted) are in the cluster; else the single most precise
    leaf. The tree is fitted with balanced class weights, which finds the words of a small
    cluster but would also accept leaves mostly made of other texts: a rule must be precise."""
    ids, totals = np.unique(leaves, return_counts=True)
    positives = np.array([int(target[leaves == leaf].sum()) for leaf in ids])
    share = positives / np.maximum(totals, 1)
    chosen = {int(leaf) for leaf, p in zip(ids, share, strict=True) if p >= MIN_LEAF_PRECISION}
    if not chosen and positives.any():
        chosen = {int(ids[np.argmax(np.where(positives > 0, share, -1.0))])}
    return chosen


def positive_paths(
    tree: Any, words: np.ndarray, leaves: set[int] | None = None
) -> tuple[tuple[tuple[str, bool], ...], ...]:
    """The root-to-leaf paths of a fitted tree to ``leaves`` (default: the leaves that predict
    the cluster)."""
    t = tree.tree_
    positive = list(tree.classes_).index(True) if True in tree.classes_ else None
    if positive is None:
        return ()
    paths: list[tuple[tuple[str, bool], ...]] = []

    def walk(node: int, path: tuple[tuple[str, bool], ...]) -> None:
        left, right = t.children_left[node], t.children_right[node]
        if left == right:  # a leaf
            wanted = (
                node in leaves
                if leaves is not None
                else int(np.argmax(t.value[node][0])) == positive
            )
            if wanted and path:
                paths.append(path)
            return
        word = str(words[t.feature[node]])
        # Binary features split at 0.5: left is "absent", right is "present".
        walk(left, (*path, (word, False)))
        walk(right, (*path, (word, True)))

    walk(0, ())
    return tuple(_simplify(p) for p in merge_clauses(paths))


def merge_clauses(
    clauses: list[tuple[tuple[str, bool], ...]],
) -> list[tuple[tuple[str, bool], ...]]:
    """Fewer, shorter clauses with the same meaning: (A and w) or (A and not w) is A, and a
    clause that contains another one adds nothing."""
    sets = [frozenset(c) for c in clauses]
    changed = True
    while changed:
        changed = False
        for i, a in enumerate(sets):
            for b in sets[i + 1 :]:
                diff = a ^ b
                if len(diff) == 2 and len({w for w, _ in diff}) == 1:
                    sets = [x for x in sets if x not in (a, b)] + [a & b]
                    changed = True
                    break
            if changed:
                break
    kept = [a for a in sets if not any(b < a for b in sets)]
    unique = list(dict.fromkeys(kept))
    return [tuple(c) for c in unique]


def _simplify(path: tuple[tuple[str, bool], ...]) -> tuple[tuple[str, bool], ...]:
    """Present words first; a clause of only absences stays as it is."""
    return tuple(sorted(path, key=lambda wp: (not wp[1], wp[0])))
