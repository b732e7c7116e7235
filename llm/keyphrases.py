"""Goal-conditioned embeddings by LLM keyphrase expansion (issue 5), off by default: it costs
one LLM call per ``KEYPHRASE_BATCH`` distinct texts.

Each corpus text is rewritten by the LLM into a few keyphrases about the analyst's goal (the
prompt is ``llm.goal_prompts.KEYPHRASE_TASK``; texts only inside its ``<data>`` part), through a
``JSONAsker``: every call is stored, an identical call is answered from the store, the call
budget is respected and an unusable reply is repaired once. A text's vector is then
``normalize(e(text) + e("; ".join(keyphrases)))``: the text keeps its own meaning and the
keyphrases pull together the texts that the goal makes alike (keyphrase expansion, as in
"Large Language Models Enable Few-Shot Clustering", Viswanathan et al. 2023, which
concatenates the two vectors). A text with no usable keyphrases keeps its own vector and is
counted (``KeyphraseStats.kept``).

``KeyphraseEmbedder.model_id`` is the base encoder's id plus
``|keyphrases=<prompt version>:<LLM model>:<sha256(goal)[:12]>``, so the embedding cache keeps
these vectors apart from plain ones and from other goals or models. A second run, and any
rebuild of a stored run's embedder (relabel, edits, hierarchy: ``from_model_id`` with no
asker), reads them from the cache without asking the LLM; only texts missing from the cache
need one (``KeyphraseError`` says so when none is configured).

The guard (issue 18, ``guard_expansion``; the mechanism is ``llm.guard``, shared with
label-then-classify): a wrong keyphrase pulls a text towards the group it is confused with, and
a model wrong one time in four made AG News clusters worse than without expansion. The modes
(``corpusmap.strategies``) call ``KeyphraseEmbedder.guard`` on the run's vectors: each text's
keyphrases are read as an answer (the group their vector falls in), near-duplicate texts
measure the model's accuracy, and where it is under ``llm.guard.TRUST_ACCURACY`` the run drops
every expansion when the embedding is estimated the more accurate on the whole, else a text
keeps its expansion only where it agrees with the embedding or the model is estimated the more
accurate of the two at that text's margin; the others get their own vector back.

Texts that are not the corpus's own (cluster explanations, proposed descriptions, category
names) are embedded by ``plain``, the base encoder (``clustering.embed.plain_encoder``): they are
never sent to the LLM and cost no call outside the run's plan.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import numpy as np

from clustering.types import Embedder
from llm.asker import CallBudget, JSONAsker, Question
from llm.cache import CallStore
from llm.errors import KeyphraseError, LLMConfigError
from llm.goal_prompts import (
    KEYPHRASE_PROMPT_VERSION,
    KEYPHRASE_TEXT_TOKENS,
    KEYPHRASES_SCHEMA,
    estimate_prompt_tokens,
    goal_text,
    keyphrase_messages,
    parse_keyphrases,
)
from llm.guard import (
    TRUST_ACCURACY,
    calibration_pairs,
    embedding_accuracy,
    estimate_accuracy,
    guard_answers,
    margins,
)
from llm.prompts import CHARS_PER_TOKEN
from llm.settings import ENV_BASE_URL, LLMSettings

log = logging.getLogger(__name__)

KEYPHRASE_BATCH = 16
"""Texts per keyphrase call."""
CHUNK_BATCHES = 8
"""LLM calls' worth of texts the embed stage hands over at a time (its progress step)."""
KEYPHRASE_TAG = "|keyphrases="
"""Between the base encoder's id and the expansion's tag in ``KeyphraseEmbedder.model_id``."""
COMPLETION_TOKENS_PER_TEXT = 30
"""Expected reply size per text (``{"id": 3, "keyphrases": [4 short phrases]}``), for plans."""
GUARD_PAIRS = 100
"""Near-duplicate pairs whose keyphrases measure the model's accuracy (the guard): every text is
expanded anyway, so they cost no call; the most alike pairs first."""
GUARD_MIN_PAIRS = 30
"""Fewer pairs than this (a small corpus) and the guard keeps every expansion: on 40 AG News
texts the 12 mutual nearest neighbours were of one class half the time, so a model right every
time looked right half the time (the share's standard error over 12 pairs is about 0.13)."""
GUARD_NEIGHBOURS = 15
"""Nearest texts (own vectors) whose keyphrase groups vote for the embedding's answer."""
KEYPHRASE_MAX_TOKENS = 1024
"""Room the reply of one call needs for a full batch; a lower ``max_tokens`` setting is raised
to it for keyphrase calls only (a cut reply would be invalid and lose the whole batch)."""


@dataclass
class KeyphraseStats:
    """Distinct texts sent for expansion, how many got keyphrases, how many kept their own
    vector (no usable keyphrases came back for them: a failed call, a malformed or partial
    reply, or the call budget spent)."""

    texts: int = 0
    expanded: int = 0
    kept: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def goal_hash(goal: str | None) -> str:
    return hashlib.sha256(goal_text(goal).encode("utf-8")).hexdigest()[:12]


def keyphrase_tag(llm_model: str, goal: str | None, version: str = KEYPHRASE_PROMPT_VERSION) -> str:
    return f"{version}:{llm_model}:{goal_hash(goal)}"


def split_keyphrase_id(model_id: str) -> tuple[str, str | None]:
    """``(base encoder's id, tag)`` of a ``KeyphraseEmbedder.model_id``; ``(model_id, None)``
    for any other embedder's id."""
    base, found, tag = model_id.rpartition(KEYPHRASE_TAG)
    return (base, tag) if found else (model_id, None)


def parse_keyphrase_tag(tag: str) -> tuple[str, str, str]:
    """``(prompt version, LLM model, goal hash)``; the model name may hold ``:`` (Ollama)."""
    version, _, rest = tag.partition(":")
    model, _, hashed = rest.rpartition(":")
    if not version or not model or not hashed:
        raise KeyphraseError(f"{tag!r} is not a keyphrase expansion tag (version:model:goal hash)")
    return version, model, hashed


def keyphrase_calls(n_texts: int, batch_size: int = KEYPHRASE_BATCH) -> int:
    """Calls that expand ``n_texts`` distinct texts (repairs of unusable replies come on top)."""
    return math.ceil(max(0, n_texts) / batch_size)


def plan_keyphrases(texts: Sequence[str], batch_size: int = KEYPHRASE_BATCH) -> dict[str, int]:
    """Calls and tokens that expanding ``texts`` (distinct, not yet cached) will cost."""
    calls = keyphrase_calls(len(texts), batch_size)
    limit = KEYPHRASE_TEXT_TOKENS * CHARS_PER_TOKEN
    chars = sum(min(len(t), limit) + 20 for t in texts)
    prompt = calls * estimate_prompt_tokens([]) + chars // CHARS_PER_TOKEN if calls else 0
    return {
        "calls": calls,
        "prompt_tokens": prompt,
        "completion_tokens": COMPLETION_TOKENS_PER_TEXT * len(texts),
        "keyphrase_calls": calls,
    }


def keyphrase_asker(
    settings: LLMSettings,
    *,
    store: CallStore | None = None,
    run_id: int | None = None,
    budget: CallBudget | None = None,
) -> JSONAsker:
    """A ``JSONAsker`` for keyphrase calls: their own prompt version (cache keys), and reply
    room for a full batch."""
    if settings.max_tokens is not None and settings.max_tokens < KEYPHRASE_MAX_TOKENS:
        settings = settings.with_overrides(max_tokens=KEYPHRASE_MAX_TOKENS)
    return JSONAsker(
        settings,
        prompt_version=KEYPHRASE_PROMPT_VERSION,
        store=store,
        run_id=run_id,
        budget=budget,
    )


class KeyphraseEmbedder:
    """``base`` with each text expanded into goal-relevant keyphrases; see the module docstring.

    ``asker`` asks the LLM (``keyphrase_asker``); ``None`` makes an embedder that only reads the
    embedding cache (a rebuilt run's), and needs ``llm_model`` to name its vectors.
    """

    def __init__(
        self,
        base: Embedder,
        asker: JSONAsker | None,
        goal: str | None,
        *,
        llm_model: str | None = None,
        version: str = KEYPHRASE_PROMPT_VERSION,
        batch_size: int = KEYPHRASE_BATCH,
    ) -> None:
        if asker is not None and llm_model not in (None, asker.settings.model):
            raise LLMConfigError(
                f"the keyphrase asker uses model {asker.settings.model!r}, not {llm_model!r}"
            )
        model = llm_model or (asker.settings.model if asker is not None else "")
        if not model:
            raise LLMConfigError("name the LLM model whose keyphrases the vectors hold")
        self.base = base
        self.asker = asker
        self.goal = goal
        self.llm_model = model
        self.version = version
        self.batch_size = batch_size
        self.chunk_size = batch_size * CHUNK_BATCHES
        """``clustering.cached_embedding.embed_texts`` hands over whole chunks of this many texts, so every
        LLM call but a run's last one carries ``batch_size`` texts (the plan counts on it)."""
        self.stats = KeyphraseStats()
        self._plain: dict[str, np.ndarray] = {}
        """The base encoder's vectors of the texts this embedder expanded (for the guard)."""

    @classmethod
    def from_model_id(
        cls, model_id: str, base: Embedder, goal: str | None, asker: JSONAsker | None = None
    ) -> KeyphraseEmbedder:
        """The embedder a stored run used, given its ``model_id``, its base encoder and goal."""
        _, tag = split_keyphrase_id(model_id)
        if tag is None:
            raise KeyphraseError(f"{model_id!r} is not a keyphrase embedder's id")
        version, model, hashed = parse_keyphrase_tag(tag)
        if hashed != goal_hash(goal):
            raise KeyphraseError(
                f"the vectors of {model_id!r} were expanded for another goal than {goal!r}"
            )
        return cls(base, asker, goal, llm_model=model, version=version)

    @property
    def plain(self) -> Embedder:
        """The base encoder, for texts that are not the corpus's (never sent to the LLM)."""
        return self.base

    @property
    def model_id(self) -> str:
        return f"{self.base.model_id}{KEYPHRASE_TAG}{keyphrase_tag(self.llm_model, self.goal, self.version)}"

    @property
    def cache_key(self) -> str:
        """The base encoder's cache key (model and precision) plus the expansion's tag."""
        return f"{self.base.cache_key}{KEYPHRASE_TAG}{keyphrase_tag(self.llm_model, self.goal, self.version)}"

    @property
    def max_seq_length(self) -> int | None:
        return getattr(self.base, "max_seq_length", None)

    @property
    def dimension(self) -> int:
        return int(self.base.dimension)  # type: ignore[attr-defined]

    @property
    def prefix(self) -> str:
        return str(getattr(self.base, "prefix", ""))

    def usage_dict(self) -> dict[str, Any]:
        """The asker's usage (calls, tokens, cache hits, budget) and ``KeyphraseStats``."""
        usage = self.asker.usage_dict() if self.asker is not None else {}
        return {**usage, **self.stats.to_dict(), "prompt_version": self.version}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.asarray(self.base.embed([]), dtype=np.float32)
        phrases = self.expand(texts)
        vectors = np.array(self.base.embed(texts), dtype=np.float32)
        self._plain.update(zip(texts, vectors.copy(), strict=True))
        expanded = [i for i, p in enumerate(phrases) if p]
        if expanded:
            extra = np.asarray(
                self.base.embed(["; ".join(phrases[i]) for i in expanded]), dtype=np.float32
            )
            vectors[expanded] += extra
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors /= np.maximum(norms, np.float32(1e-12))
        return vectors

    def plain_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """The base encoder's vectors of ``texts``: those this embedder computed while expanding
        them, the others (read from the embedding cache by a run) embedded now."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._plain))
        if missing:
            vectors = np.asarray(self.base.embed(missing), dtype=np.float32)
            self._plain.update(zip(missing, vectors, strict=True))
        return np.vstack([self._plain[t] for t in texts]) if texts else np.zeros((0, 0))

    def guard(
        self,
        texts: Sequence[str],
        vectors: np.ndarray,
        n_groups: int | None = None,
        random_state: int = 42,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """``guard_expansion`` of a run's ``vectors`` (this embedder's, of ``texts``)."""
        return guard_expansion(texts, vectors, self.plain_vectors(texts), n_groups, random_state)

    def expand(self, texts: Sequence[str]) -> list[list[str]]:
        """Keyphrases of each text (``[]`` where none usable came back), ``batch_size`` per call."""
        asker = self._asker_for(len(texts))
        batches = [
            list(texts[k : k + self.batch_size]) for k in range(0, len(texts), self.batch_size)
        ]
        questions = [
            Question(keyphrase_messages(self.goal, batch), KEYPHRASES_SCHEMA, "keyphrases")
            for batch in batches
        ]
        parsers = [partial(parse_keyphrases, n=len(batch)) for batch in batches]
        phrases: list[list[str]] = []
        for batch, answer in zip(batches, asker.ask_many(questions, parsers), strict=True):
            found = answer or {}
            phrases.extend(found.get(i, []) for i in range(len(batch)))
        expanded = sum(1 for p in phrases if p)
        self.stats.texts += len(texts)
        self.stats.expanded += expanded
        self.stats.kept += len(texts) - expanded
        log.info(
            "keyphrases for %d texts in %d calls: %d expanded, %d kept as they are",
            len(texts),
            len(batches),
            expanded,
            len(texts) - expanded,
        )
        return phrases

    def _asker_for(self, n_missing: int) -> JSONAsker:
        if self.asker is None:
            raise KeyphraseError(
                f"{n_missing:,} text(s) are not in the embedding cache under {self.model_id!r}, "
                f"and their vectors need keyphrases from the LLM {self.llm_model!r}: configure "
                f"its endpoint ({ENV_BASE_URL} or --llm-base-url) to expand them"
            )
        if self.version != KEYPHRASE_PROMPT_VERSION:
            raise KeyphraseError(
                f"{n_missing:,} text(s) are not in the embedding cache, and the run's keyphrases "
                f"came from prompt {self.version!r} while this corpusmap has "
                f"{KEYPHRASE_PROMPT_VERSION!r}: start a new run with keyphrase expansion"
            )
        return self.asker


def _unit(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)


def neighbour_votes(
    plain: np.ndarray, answers: np.ndarray, n_neighbors: int = GUARD_NEIGHBOURS
) -> tuple[np.ndarray, np.ndarray]:
    """The embedding's answer for each text: the answer most of its ``n_neighbors`` nearest
    texts (own vectors, cosine) got, and its margin, the share of votes it leads the next by."""
    from sklearn.neighbors import NearestNeighbors

    m = min(n_neighbors, len(plain) - 1)
    index = NearestNeighbors(n_neighbors=m + 1, metric="cosine").fit(plain)
    neighbours = index.kneighbors(plain, return_distance=False)[:, 1:]
    votes = np.zeros((len(plain), int(answers.max()) + 1))
    np.add.at(votes, (np.repeat(np.arange(len(plain)), m), answers[neighbours].ravel()), 1.0)
    nearest, margin = margins(votes)
    return nearest, margin / max(m, 1)


def guard_expansion(
    texts: Sequence[str],
    vectors: np.ndarray,
    plain: np.ndarray,
    n_groups: int | None = None,
    random_state: int = 42,
) -> tuple[np.ndarray, dict[str, Any]]:
    """``vectors`` (expanded) with the expansion undone where the guard drops it (the module
    docstring), and what it did. ``plain`` holds the texts' own vectors.

    A text's expanded vector is ``normalize(a + k)``, its own ``a`` and its keyphrases' ``k``
    (unit vectors), so ``k = 2 (v·a) v - a`` is read back from the two. The keyphrase vectors
    fall into ``n_groups`` groups (k-means; default ``sqrt(n / 2)``, 2 to 100): a text's group
    is the LLM's answer, and the group most of its nearest texts by their own vectors fall in
    is the embedding's (``neighbour_votes``), with the vote's lead as its margin. Under
    ``TRUST_ACCURACY``, when the embedding is estimated more accurate than the LLM over all the
    texts, no text keeps its expansion; else ``llm.guard.guard_answers`` picks the texts."""
    from sklearn.cluster import KMeans

    v, a = _unit(vectors), _unit(plain)
    along = np.sum(v * a, axis=1)
    expanded = np.flatnonzero(along < 1.0 - 1e-4)
    k = n_groups or int(np.clip(round(math.sqrt(len(texts) / 2)), 2, 100))
    stats: dict[str, Any] = {"expanded": int(len(expanded)), "groups": k, "dropped": 0}
    if len(expanded) <= max(k, GUARD_NEIGHBOURS):
        return vectors, stats
    keyphrases = _unit(2.0 * along[expanded, None] * v[expanded] - a[expanded])
    groups = KMeans(n_clusters=k, random_state=random_state, n_init=3).fit_predict(keyphrases)
    answers = {int(i): int(g) for i, g in enumerate(groups)}  # positions within ``expanded``
    own = a[expanded]
    pairs = calibration_pairs(own, GUARD_PAIRS, random_state, [texts[int(i)] for i in expanded])
    accuracy = estimate_accuracy(answers, pairs, GUARD_MIN_PAIRS)
    stats["pairs"] = len(pairs)
    if accuracy is None:
        return vectors, stats
    stats["llm_accuracy"] = round(accuracy, 4)
    if accuracy >= TRUST_ACCURACY:
        return vectors, stats
    nearest, margin = neighbour_votes(own, groups)
    embedding = float(np.mean(embedding_accuracy(answers, nearest, margin, accuracy)))
    stats["embedding_accuracy"] = round(embedding, 4)
    if embedding > accuracy:
        kept: dict[int, int] = {}
        stats["dropped_all"] = True
    else:
        kept = guard_answers(answers, nearest, margin, accuracy, stats)
        stats.pop("guard_dropped", None)
    dropped = expanded[[i for i in answers if i not in kept]]
    stats["dropped"] = int(len(dropped))
    if not len(dropped):
        return vectors, stats
    guarded = np.array(vectors, dtype=np.float32, copy=True)
    # The own vector exactly as given (not renormalised): UMAP turned a 3e-8 difference into
    # 0.01 NMI on AG News 400 (issue 18).
    guarded[dropped] = np.asarray(plain, dtype=np.float32)[dropped]
    log.info(
        "keyphrase guard: the LLM's estimated accuracy is %.2f, the embedding's %.2f; %d of %d "
        "texts keep their own vector",
        accuracy,
        embedding,
        len(dropped),
        len(expanded),
    )
    return guarded, stats
