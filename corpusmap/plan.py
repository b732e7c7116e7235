"""The LLM plan of a run: the calls and tokens each goal-driven step will spend at most, shown
before any call is made, and the budget left to each step."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from clustering.cached_embedding import uncached_texts
from clustering.pipeline import PipelineConfig
from clustering.types import Embedder
from corpusmap import service
from corpusmap.errors import CorpusmapError
from corpusmap.modes import ModeOptions
from corpusmap.request import RunRequest
from corpusmap.strategies import goal_embedder
from storage import Store

MAX_PAIR_CALLS = 6
"""Most "same group?" calls the hierarchy's pairwise checks make, within the run's budget."""


def keyphrase_budget_left(budget: int | None, keyphrase_calls: int) -> int | None:
    """What ``--llm-budget`` leaves to the mode's own steps once keyphrase expansion is paid."""
    return None if budget is None else max(0, budget - keyphrase_calls)


def plan_llm(
    texts: Sequence[str],
    options: ModeOptions,
    config: PipelineConfig,
    *,
    keyphrase_texts: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Calls and tokens a mode will spend at most (the budget), for display before it runs.

    With ``options.expand_keyphrases`` the plan starts with ``keyphrase_calls`` for
    ``keyphrase_texts`` (the distinct texts not in the embedding cache; default: every
    distinct text), and the mode's steps plan with what ``llm_budget`` leaves. A budget that
    cannot expand every one of those texts raises ``CorpusmapError``: expanding some texts and
    not others would put two kinds of vectors in one space and distort it.
    """
    if not options.expand_keyphrases:
        return _plan_steps(texts, options, config)
    from llm.keyphrases import KEYPHRASE_BATCH, plan_keyphrases

    todo = list(dict.fromkeys(texts)) if keyphrase_texts is None else list(keyphrase_texts)
    expansion = plan_keyphrases(todo)
    needed = expansion["keyphrase_calls"]
    if options.llm_budget is not None and options.llm_budget < needed:
        raise CorpusmapError(
            f"--expand-keyphrases needs {needed:,} LLM calls to expand {len(todo):,} distinct "
            f"texts ({KEYPHRASE_BATCH} per call), but --llm-budget is {options.llm_budget}: "
            f"raise --llm-budget to at least {needed:,} (the mode's own steps get what is left) "
            "or leave expansion off"
        )
    steps = replace(options, llm_budget=keyphrase_budget_left(options.llm_budget, needed))
    plan = _plan_steps(texts, steps, config)
    combined = {
        k: plan.get(k, 0) + expansion[k] for k in ("calls", "prompt_tokens", "completion_tokens")
    }
    return {**plan, **combined, "keyphrase_calls": needed, "keyphrase_texts": len(todo)}


def _plan_steps(
    texts: Sequence[str], options: ModeOptions, config: PipelineConfig
) -> dict[str, Any]:
    if options.mode == "propose":
        from llm.goal import GoalConfig, plan_goal

        return plan_goal(
            texts,
            GoalConfig(goal=config.goal, n_clusters=config.n_clusters, budget=options.llm_budget),
        ).to_dict()
    if options.mode == "classify":
        from llm.classify import ClassifyConfig, plan_classify

        cfg = ClassifyConfig(
            goal=config.goal,
            n_clusters=config.n_clusters,
            categories=options.categories,
            budget=options.llm_budget,
        )
        return plan_classify(texts, cfg).to_dict()
    calls = pair_calls(options) if options.hierarchy else 0
    return {
        "calls": calls,
        "prompt_tokens": calls * 400,
        "completion_tokens": calls * 30,
        "pair_calls": calls,
    }


def pair_calls(options: ModeOptions) -> int:
    if options.llm_budget is None:
        return MAX_PAIR_CALLS
    return min(MAX_PAIR_CALLS, options.llm_budget)


def plan_for_corpus(
    store: Store,
    request: RunRequest,
    *,
    embedder: Embedder | None = None,
    llm_settings: Any | None = None,
) -> dict[str, Any]:
    """The LLM budget ``request`` would plan on its stored corpus (shown before it runs).

    With keyphrase expansion and ``llm_settings``, only the texts whose expanded vectors are
    not cached yet are counted; without them, every distinct text. Raises ``CorpusmapError``
    when ``llm_budget`` cannot pay for the expansion.
    """
    assert request.corpus_id is not None
    options, config = request.options, request.pipeline
    corpus = store.load_corpus(request.corpus_id)
    texts = [corpus.texts[i] for i in corpus.nonempty_index]
    todo = None
    if options.expand_keyphrases and llm_settings is not None and llm_settings.configured:
        from llm.keyphrases import KeyphraseEmbedder

        model = embedder or service.get_embedder(
            request.embedding.model, precision=request.embedding.precision
        )
        base = goal_embedder(model, options, config)
        expanded = KeyphraseEmbedder(base, None, config.goal, llm_model=llm_settings.model)
        todo = uncached_texts(texts, expanded, store)
    return plan_llm(texts, options, config, keyphrase_texts=todo)
