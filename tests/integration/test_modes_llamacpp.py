"""Each LLM mode with a real local model: llama.cpp's server with SmolLM2-135M-Instruct through
the ``openai`` client (issue 5). A 135M model often answers with malformed or off-task JSON;
what is tested is the structure, the statuses and the budget, never the wording."""

from __future__ import annotations

import numpy as np
import pytest

from clustering.hierarchy import leaf_partitions
from clustering.metrics import external_metrics
from clustering.types import NOISE
from llm import LLMSettings
from llm.asker import CallBudget, JSONAsker
from llm.classify import ClassifyConfig, label_then_classify
from llm.goal import GoalConfig, propose_assign_select
from llm.goal_prompts import GOAL_PROMPT_VERSION
from llm.granularity import choose_k_by_pairs
from tests.conftest import read_jsonl_gz
from tests.support.local_llm import LOCAL_LLM_MARKS

pytestmark = LOCAL_LLM_MARKS

BUDGET = 4
PER_CLASS = 15
SMALL_BATCH = 6
"""Texts per call: short prompts keep a 135M model on 2 shared cores within its time-out."""


@pytest.fixture(scope="module")
def ag_60(shared_data, embedder):
    rows = read_jsonl_gz("ag_news_test.jsonl.gz", 1000)
    picked = []
    for label in ("World", "Sports", "Business", "Sci/Tech"):
        picked += [r for r in rows if r["label"] == label][:PER_CLASS]
    texts = [r["text"] for r in picked]
    return texts, embedder.embed(texts), [r["label"] for r in picked]


def make_asker(server, store, budget=BUDGET):
    settings = LLMSettings(
        base_url=server.base_url,
        model=server.model,
        timeout_s=300,
        max_in_flight=1,
        max_retries=0,
        max_tokens=256,
    )
    return JSONAsker(
        settings, prompt_version=GOAL_PROMPT_VERSION, store=store, budget=CallBudget(budget)
    )


def check_usage(asker, store, mode="", labels=None, truth=None):
    usage = asker.usage_dict()
    quality = external_metrics(truth, labels) if labels is not None else {}
    # Figures for the closing note (pytest -s shows them).
    print(
        f"\n{mode}: {len(labels) if labels is not None else 0} texts, {usage['calls']} calls, "
        f"{usage['prompt_tokens']} + {usage['completion_tokens']} tokens, "
        f"{usage['seconds']:.0f} s, {usage['unanswered']} unanswered, {usage['repairs']} repairs, "
        + ", ".join(f"{k} {v:.3f}" for k, v in quality.items())
    )
    assert usage["budget"]["used"] <= BUDGET and usage["calls"] <= BUDGET
    assert usage["calls"] == usage["budget"]["used"]
    calls = store.list_llm_calls()
    assert len(calls) >= usage["calls"]
    assert {c.status for c in calls} <= {"ok", "invalid", "empty", "refused", "error"}
    return usage


def test_propose_mode_with_the_local_model(local_server, ag_60, embedder, store):
    texts, vectors, truth = ag_60
    asker = make_asker(local_server, store)
    config = GoalConfig(
        goal="group by the kind of event reported",
        n_clusters=4,
        budget=BUDGET,
        proposal_batch=SMALL_BATCH,
        check_batch=SMALL_BATCH,
    )
    result = propose_assign_select(texts, vectors, embedder, config, asker)
    check_usage(asker, store, "propose", result.assignment.labels, truth)
    assert 1 <= result.assignment.n_clusters <= 4
    assert len(result.labels) == result.assignment.n_clusters
    assert all(lab.name and lab.description for lab in result.labels)
    # Groups the model did not propose come from keyword candidates, and the stats say so
    # (all of them: the fallback; some: the fill). SmolLM2 proposed 1 description for 60 AG
    # News texts; the selection took 4 of the 7 keyword candidates that filled up to K.
    not_llm = [lab for lab in result.labels if lab.labeler != "goal-llm"]
    assert not not_llm or (
        result.stats.get("fallback") == "keywords" or result.stats.get("filled_by_keywords", 0) > 0
    )


def test_classify_mode_with_the_local_model(local_server, ag_60, embedder, store):
    texts, vectors, truth = ag_60
    asker = make_asker(local_server, store)
    config = ClassifyConfig(
        goal="group by the kind of event reported",
        categories=("world politics", "sports", "business", "science and technology"),
        budget=BUDGET,
        classify_batch=SMALL_BATCH,
    )
    result = label_then_classify(texts, vectors, embedder, config, asker)
    check_usage(asker, store, "classify", result.assignment.labels, truth)
    stats = result.stats
    assert stats["llm_classified"] + stats["embedding_classified"] == len(texts)
    assert stats["llm_classified"] <= BUDGET * SMALL_BATCH
    labels = result.assignment.labels
    assert len(labels) == len(texts) and ((labels >= 0) | (labels == NOISE)).all()


def test_pairwise_granularity_with_the_local_model(local_server, ag_60, store):
    texts, vectors, truth = ag_60
    names = sorted(set(truth))
    leaf = np.array([2 * names.index(t) + (i % 2) for i, t in enumerate(truth)])
    _, partitions = leaf_partitions(vectors, leaf, [2, 4, 8])
    asker = make_asker(local_server, store, budget=2)
    choice = choose_k_by_pairs(texts, leaf, partitions, asker, "topic", max_calls=2)
    assert choice.k in partitions and choice.method in ("llm_pairs", "none")
    assert asker.usage.calls <= 2


def test_keyphrase_expansion_with_the_local_model(local_server, ag_60, embedder, store):
    """Goal-conditioned vectors from the local model's keyphrases: 2 calls of 6 texts; every
    text gets a unit vector, expanded where the model's JSON was usable, its own otherwise."""
    from llm.keyphrases import KeyphraseEmbedder

    texts = ag_60[0][:12]
    asker = make_asker(local_server, store, budget=2)
    expander = KeyphraseEmbedder(
        embedder, asker, "group by the kind of event reported", batch_size=SMALL_BATCH
    )
    vectors = expander.embed(texts)
    usage = expander.usage_dict()
    print(
        f"\nkeyphrases: {usage['calls']} calls, {usage['expanded']} expanded, {usage['kept']} kept"
    )
    assert vectors.shape == (12, embedder.dimension)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert usage["calls"] <= 2 and usage["expanded"] + usage["kept"] == 12
    plain = embedder.embed(texts)
    plain /= np.linalg.norm(plain, axis=1, keepdims=True)  # bf16 vectors are unit to ~0.5%
    changed = (vectors * plain).sum(axis=1) < 0.999
    assert int(changed.sum()) == usage["expanded"]
