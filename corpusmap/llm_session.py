"""The run's LLM session: one place for the endpoint settings, the labeler, the asker of the
goal-driven steps and keyphrase expansion (one call budget for both), the run they record their
calls against, and the usage the run stores (their calls and tokens, summed)."""

from __future__ import annotations

from typing import Any

from clustering.types import Embedder, Labeler
from corpusmap.errors import CorpusmapError
from corpusmap.request import NO_LLM, RunRequest
from storage import Store

USAGE_TOTALS = (
    "calls",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cache_hits",
    "over_budget",
    "unanswered",
    "failures",
    "retries",
    "repairs",
    "cost_usd",
)
"""Usage keys summed over the run's askers and labeler."""


def llm_settings_from(overrides: dict[str, Any] | None) -> Any | None:
    """LLM settings from the environment and overrides, or ``None`` when none is configured."""
    from llm import LLMSettings

    settings = LLMSettings.from_env(**{k: v for k, v in (overrides or {}).items() if v is not None})
    return settings if settings.configured else None


def make_labeler(kind: str, store: Store | None, settings: Any | None) -> Labeler:
    """``keywords`` (offline) or ``llm`` (the endpoint in ``settings``)."""
    from clustering.labels import KeywordLabeler

    if kind == "keywords":
        return KeywordLabeler()
    if kind != "llm":
        raise CorpusmapError(f"unknown labeler {kind!r}; use 'keywords' or 'llm'")
    if settings is None or not settings.configured:
        raise CorpusmapError(NO_LLM.format(what="LLM labels need"))
    from llm import LLMLabeler

    return LLMLabeler(settings, store=store)


def make_asker(
    settings: Any | None, store: Store, budget: int | None, call_budget: Any | None = None
) -> Any | None:
    """A ``JSONAsker`` for the goal-driven prompts, or ``None`` with no endpoint or budget 0.

    ``call_budget`` (``llm.asker.CallBudget``) is shared with other askers of the same run
    (keyphrase expansion): the run's calls together stay within it.
    """
    if settings is None or not settings.configured or budget == 0:
        return None
    from llm.asker import CallBudget, JSONAsker
    from llm.goal_prompts import GOAL_PROMPT_VERSION

    return JSONAsker(
        settings,
        prompt_version=GOAL_PROMPT_VERSION,
        store=store,
        budget=call_budget or CallBudget(budget),
    )


class LLMSession:
    """Everything of one run that talks to the LLM; ``close()`` ends it.

    ``labeler`` names the clusters; ``expander`` (keyphrase expansion) and ``asker`` (the mode's
    own steps, hierarchy checks) share ``call_budget`` so the run stays within its
    ``llm_budget``; ``bind(run_id)`` records every later call against the run.
    """

    def __init__(
        self,
        request: RunRequest,
        store: Store,
        settings: Any | None,
        *,
        labeler: Labeler | None = None,
    ) -> None:
        self.settings = settings if settings is not None and settings.configured else None
        self.store = store
        self.labeler = labeler or make_labeler(request.labeler, store, self.settings)
        self.call_budget: Any | None = None
        self.expander: Any | None = None
        self.asker: Any | None = None
        if request.options.expand_keyphrases and self.settings is not None:
            from llm.asker import CallBudget
            from llm.keyphrases import keyphrase_asker

            self.call_budget = CallBudget(request.options.llm_budget)
            self.expander = keyphrase_asker(self.settings, store=store, budget=self.call_budget)

    def start_steps(self, options: Any, budget: int | None) -> None:
        """The asker of the mode's own steps (propose, classify, the hierarchy's pairwise
        checks), with what keyphrase expansion left of the budget; none when no step asks."""
        asks = options.mode != "cluster" or (options.hierarchy and options.n_parents is None)
        if asks:
            self.asker = make_asker(self.settings, self.store, budget, self.call_budget)

    def bind(self, run_id: int) -> None:
        self.labeler.bind_run(run_id)
        for each in (self.asker, self.expander):
            if each is not None:
                each.run_id = run_id

    def usage(self, plan: dict[str, Any], embedder: Embedder | None = None) -> dict[str, Any]:
        """The run's LLM usage: the mode's asker at the top, keyphrase expansion under
        ``keyphrases`` and the labeler under ``labeler``, their calls and tokens summed; the
        plan under ``plan``. Empty when the run planned and used nothing."""
        from llm.keyphrases import KeyphraseEmbedder

        usage: dict[str, Any] = self.asker.usage_dict() if self.asker is not None else {}
        parts: dict[str, dict[str, Any]] = {}
        if isinstance(embedder, KeyphraseEmbedder) and embedder.asker is not None:
            parts["keyphrases"] = embedder.usage_dict()
        labeled = self.labeler.usage_dict()
        if labeled:
            parts["labeler"] = labeled
        for name, part in parts.items():
            if not usage:  # the first part's figures are the totals so far
                usage = {**part, name: part}
                continue
            usage[name] = part
            for key in USAGE_TOTALS:
                if key in usage or key in part:
                    usage[key] = usage.get(key, 0) + part.get(key, 0)
        if usage or plan.get("calls"):
            usage["plan"] = plan
        return usage

    def close(self) -> None:
        for each in (self.asker, self.expander, self.labeler):
            if each is not None:
                each.close()


def merged_usage(before: dict[str, Any], added: dict[str, Any], name: str) -> dict[str, Any]:
    """A run's stored LLM usage with a later step's usage added under ``name`` and in the
    totals (a hierarchy added afterwards must not erase what the run itself used)."""
    merged = {**before, name: added}
    for key in USAGE_TOTALS:
        if key in before or key in added:
            merged[key] = before.get(key, 0) + added.get(key, 0)
    return merged
