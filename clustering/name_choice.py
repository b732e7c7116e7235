"""Names a reader can tell apart (issue 14): among each cluster's distinctive candidate terms
(``clustering.keywords.candidates``), the terms of its name are chosen by how near the name
embeds to the cluster's centroid against the nearest other centroid, in the run's own embedding
space, with no word in two clusters' names. The encoder is passed in (the run's); nothing here
loads a model. Measured in ``clustering.keywords``' notes and bench/results/names.gold.md."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from clustering.labels import NAME_KEYWORDS, keyword_name
from clustering.types import Embedder

NAME_CANDIDATES = 8
"""Free candidate terms per cluster tried at each step of ``choose_names`` (FREX order): every
try is one short text to embed."""
MAX_NAME_STEPS = 2 * NAME_KEYWORDS
"""Steps of ``choose_names``: three terms, more when a phrase absorbs a word already chosen."""
STEM_LETTERS = 5
"""A name's next term must bring a word whose first letters no term of the name has (no
"Activate · Activating · Activated"; reader top-1 unchanged on Banking77 and mix_3src)."""
NAME_PASSES = 3
"""Passes of ``choose_names``: after each, the clusters whose name reads as another's choose
first."""
REPAIR_ROUNDS = 3
"""Rounds of ``NameSearch.repair`` (each over the names misread after the last)."""
REPAIR_TRIES = 3
"""Best swaps of a misread name tried against their donors (``NameSearch.repair``)."""
SHARED_HEAD_WORDS = False
"""Whether a phrase may use a word another cluster's name already has, when the phrase also
brings a word of its own ("card fee" beside "Card · Declined"): the two halves of one split
intent could then both say what they are about, their names still differing. Measured on
corpusmap's own clusters (UMAP seed 42, ``bench.names``), off -> on: Banking77 (86 clusters)
reader top-1 0.884 -> 0.988, lexical top-1 0.965 -> 0.977, but names sharing a word 0 % -> 88 %;
mix_3src (73) 0.973 -> 1.000, lexical 0.986 -> 0.986, shared 0 % -> 70 %. Once one shared word
is allowed, most names take the intent's common head word ("Payment cancelled · Card payment ·
Payment didn't"), the boilerplate issue 14 set out to remove; kept off: distinct words over
reader top-1."""


def choose_names(
    pairs: list[tuple[float, int, int]],
    vocabulary: np.ndarray,
    ids: list[int],
    owner: dict[str, int],
    centres: np.ndarray,
    embedder: Embedder,
) -> list[list[str]]:
    """The terms of every cluster's name, chosen by how near the name embeds to the cluster's
    centroid against the nearest other centroid (the margin), no word in two names.

    One term per step for every cluster at once: each cluster tries its first
    ``NAME_CANDIDATES`` free candidates (FREX order) appended to its name so far, every tried
    name is embedded, and the clusters that would lose most without their best try choose first
    (``_take_by_regret``). So "card" goes to the card intent whose name needs it most, not to
    the one where it is most frequent. Clusters whose finished name embeds nearer another
    centroid choose first in the next of ``NAME_PASSES`` passes; the pass with the most names
    nearest their own centroid is kept, then ``NameSearch.repair`` lets a misread name take a
    word from a cluster that reads as well without it. ``owner`` (word -> cluster id) is filled
    in."""
    by_row: list[list[str]] = [[] for _ in ids]
    for _, row, j in sorted(pairs):
        by_row[row].append(str(vocabulary[j]))
    search = NameSearch(by_row, ids, centres, embedder)
    best: tuple[int, list[list[str]], dict[str, int]] | None = None
    first: set[int] = set()
    for _ in range(NAME_PASSES):
        chosen, taken = search.run_pass(owner, first)
        misread = search.misread(chosen)
        named = sum(1 for terms in chosen if terms)
        if best is None or named - len(misread) > best[0]:
            best = (named - len(misread), chosen, taken)
        if not named or not misread - first:
            break
        first |= misread
    if best is None:
        return [[] for _ in ids]
    _, chosen, taken = best
    for _ in range(REPAIR_ROUNDS):
        if not search.repair(chosen, taken):
            break
    owner.update(taken)
    return chosen


class NameSearch:
    """The candidate terms of every cluster row, the centroids and the encoder, with every name
    embedded once (``margins``)."""

    def __init__(
        self, by_row: list[list[str]], ids: list[int], centres: np.ndarray, embedder: Embedder
    ) -> None:
        self.by_row, self.ids, self.centres, self.embedder = by_row, ids, centres, embedder
        self.seen: dict[str, np.ndarray] = {}

    def margins(self, names: list[str], rows: list[int]) -> np.ndarray:
        """Cosine of each name to its row's centroid minus the highest to another centroid."""
        new = sorted(set(names) - self.seen.keys())
        if new:
            self.seen.update(zip(new, self.embedder.embed(new), strict=True))
        sims = np.vstack([self.seen[name] for name in names]) @ self.centres.T
        at = np.arange(len(names)), np.asarray(rows, dtype=np.int64)
        own = sims[at].copy()
        sims[at] = -np.inf
        return own - sims.max(axis=1)

    def name(self, terms: Sequence[str], row: int) -> str:
        return keyword_name(terms, self.ids[row])

    def misread(self, chosen: list[list[str]]) -> set[int]:
        rows = [r for r, terms in enumerate(chosen) if terms]
        if not rows:
            return set()
        final = self.margins([self.name(chosen[r], r) for r in rows], rows)
        return {r for r, m in zip(rows, final, strict=True) if m <= 0}

    def run_pass(
        self, owner: dict[str, int], first: set[int]
    ) -> tuple[list[list[str]], dict[str, int]]:
        """One pass of steps (``choose_names``); the rows in ``first`` choose first."""
        ids = self.ids
        chosen: list[list[str]] = [[] for _ in ids]
        taken: dict[str, int] = dict(owner)
        for _ in range(MAX_NAME_STEPS):
            tries: list[tuple[int, str, str]] = []
            for row, terms in enumerate(self.by_row):
                if chosen[row] and len(self.name(chosen[row], row).split(" · ")) >= NAME_KEYWORDS:
                    continue
                usable = [t for t in terms if _may_join(t, chosen[row], ids[row], taken)]
                for term in usable[:NAME_CANDIDATES]:
                    tries.append((row, term, self.name([*chosen[row], term], row)))
            if not tries:
                break
            margin = self.margins([name for *_, name in tries], [r for r, *_ in tries])
            _take_by_regret(tries, margin, chosen, ids, taken, first)
        return chosen, taken

    def repair(self, chosen: list[list[str]], taken: dict[str, int]) -> int:
        """For every misread name: put one of its cluster's candidate terms in
        place of one of its terms, taking the term's words from the clusters that own them,
        when the new name reads as its own and every such donor, with its best free
        replacement, still reads as its own (or no worse, if it did not). Returns how many
        names it changed."""
        changed = 0
        for row in sorted(self.misread(chosen)):
            if not chosen[row]:
                continue
            swaps = self._swaps(row, chosen, taken)
            if not swaps:
                continue
            gains = self.margins([self.name(terms, row) for terms, _ in swaps], [row] * len(swaps))
            for i in np.argsort(-gains, kind="stable")[:REPAIR_TRIES]:
                if gains[i] <= 0:
                    break
                terms, donors = swaps[i]
                if self._give_up(donors, terms, row, chosen, taken):
                    for word in (w for t in chosen[row] for w in t.split()):
                        taken.pop(word, None)
                    chosen[row] = terms
                    taken.update({w: self.ids[row] for t in terms for w in t.split()})
                    changed += 1
                    break
        return changed

    def _swaps(
        self, row: int, chosen: list[list[str]], taken: dict[str, int]
    ) -> list[tuple[list[str], set[int]]]:
        """Names of ``row`` with one term replaced by another candidate, and the rows that
        own its words."""
        at = {cluster: r for r, cluster in enumerate(self.ids)}
        swaps = []
        for term in self.by_row[row]:
            if term in chosen[row]:
                continue
            donors = {
                at[taken[w]] for w in term.split() if taken.get(w, self.ids[row]) != self.ids[row]
            }
            for pos in range(len(chosen[row])):
                rest = chosen[row][:pos] + chosen[row][pos + 1 :]
                mine = {w: self.ids[row] for w in term.split()}
                if _may_join(term, rest, self.ids[row], {**taken, **mine}):
                    swaps.append(([*rest[:pos], term, *rest[pos:]], donors))
        return swaps

    def _give_up(
        self,
        donors: set[int],
        terms: list[str],
        row: int,
        chosen: list[list[str]],
        taken: dict[str, int],
    ) -> bool:
        """Whether every donor row reads as well after losing ``terms``' words to ``row`` and
        taking its best free replacement; if so, the donors' names and ``taken`` are changed."""
        wanted = {w for t in terms for w in t.split()}
        after = {**taken, **{w: self.ids[row] for w in wanted}}
        plans = {}
        for d in donors:
            kept = [t for t in chosen[d] if not wanted & set(t.split())]
            before = self.margins([self.name(chosen[d], d)], [d])[0]
            options = [
                [*kept, t]
                for t in self.by_row[d]
                if t not in chosen[d] and _may_join(t, kept, self.ids[d], after)
            ][:NAME_CANDIDATES] or [kept]
            scores = self.margins([self.name(o, d) for o in options], [d] * len(options))
            best = int(np.argmax(scores))
            if scores[best] <= 0 < before or scores[best] < before <= 0:
                return False  # it read as its own and would not, or reads worse
            plans[d] = options[best]
            after.update({w: self.ids[d] for t in options[best] for w in t.split()})
        for d, terms_d in plans.items():
            for word in (w for t in chosen[d] for w in t.split()):
                if taken.get(word) == self.ids[d]:
                    taken.pop(word)
            chosen[d] = terms_d
            taken.update({w: self.ids[d] for t in terms_d for w in t.split()})
        return True


def _take_by_regret(
    tries: list[tuple[int, str, str]],
    margin: np.ndarray,
    chosen: list[list[str]],
    ids: list[int],
    owner: dict[str, int],
    first: set[int],
) -> None:
    """One term per cluster row from its ``tries``: the rows in ``first``, then those that would
    lose most without their best term (its margin minus that of their best try sharing none of
    its words), choose first, each its best try whose words are still free; ``chosen`` and
    ``owner`` filled in."""
    by_row: dict[int, list[tuple[float, str]]] = {}
    for (row, term, _), m in zip(tries, margin, strict=True):
        by_row.setdefault(row, []).append((float(m), term))
    regret = {}
    for row, options in by_row.items():
        options.sort(key=lambda x: -x[0])
        best = set(options[0][1].split())
        rest = [m for m, t in options[1:] if not best & set(t.split())]
        regret[row] = options[0][0] - (rest[0] if rest else -2.0)
    for row in sorted(by_row, key=lambda r: (r not in first, -regret[r])):
        for _, term in by_row[row]:
            if fits(term, chosen[row], ids[row], owner):
                chosen[row].append(term)
                for word in term.split():
                    owner.setdefault(word, ids[row])  # a shared head word keeps its owner
                break


def _may_join(term: str, chosen: Sequence[str], cluster: int, owner: dict[str, int]) -> bool:
    return fits(term, chosen, cluster, owner) and _new_stem(term, chosen)


def _new_stem(term: str, chosen: Sequence[str]) -> bool:
    """Whether ``term`` brings a word whose stem (its first ``STEM_LETTERS`` letters) no
    ``chosen`` term has: "Activate · Activating · Activated" names one thing three times."""
    if not STEM_LETTERS:
        return True
    stems = {w[:STEM_LETTERS] for c in chosen for w in c.split()}
    return any(w[:STEM_LETTERS] not in stems for w in term.split())


def fits(term: str, chosen: Sequence[str], cluster: int, owner: dict[str, int]) -> bool:
    """Whether ``term`` may join a cluster's ``chosen`` terms: no word of it belongs to another
    cluster, and it adds a word ("card" after "card fee" adds nothing)."""
    words = term.split()
    foreign = [w for w in words if owner.get(w, cluster) != cluster]
    if foreign and not (SHARED_HEAD_WORDS and len(foreign) < len(words)):
        return False
    return not any(set(words) <= set(c.split()) for c in chosen)


def centres_of(vectors: np.ndarray, labels: np.ndarray, ids: list[int]) -> np.ndarray:
    """Unit-length mean vector of every cluster in ``ids`` order."""
    means = np.vstack([vectors[labels == c].mean(axis=0) for c in ids]).astype(np.float64)
    return means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
