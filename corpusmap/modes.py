"""The goal-driven modes' settings (issue 5): ``ModeOptions``, part of every ``RunRequest``.

- ``cluster``: the pipeline; with seed labels or must-link / cannot-link pairs it becomes
  semi-supervised (``clustering.constraints``) and marks novel clusters (``clustering.novelty``).
- ``propose``: propose → assign → select (``llm.goal``), embeddings only without an LLM.
- ``classify``: label-then-classify (``llm.classify``), nearest category without an LLM.

Any mode can embed with goal-conditioned vectors (an instruction prefix; LLM keyphrase
expansion, whose calls come first in the plan and the budget), add a two-level hierarchy and
per-cluster keyword rules. Where each part lives: the strategies in ``corpusmap.strategies``,
the LLM plan in ``corpusmap.plan``, rules and hierarchy in ``corpusmap.structure``, the run
itself in ``corpusmap.workflow``, what a reader sees in ``corpusmap.views``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from clustering.constraints import read_pairs
from clustering.embed import resolve_instruction
from corpusmap.errors import RequestError

MODES = ("cluster", "propose", "classify")


@dataclass(frozen=True)
class ModeOptions:
    """What a mode run does beyond ``PipelineConfig``; stored with the run."""

    mode: str = "cluster"
    seed_label_column: str | None = None
    seed_labels: tuple[tuple[int, str], ...] = ()
    """Seeds typed by hand: (0-based input row number, label); they override the column."""
    must_link: tuple[tuple[int, int], ...] = ()
    """Pairs of 0-based input row numbers that belong together."""
    cannot_link: tuple[tuple[int, int], ...] = ()
    llm_budget: int | None = None
    """Most LLM calls of the goal-driven steps; ``None`` plans a default, 0 asks nothing."""
    hierarchy: bool = False
    n_parents: int | None = None
    k_method: str = "silhouette"
    """How K is chosen offline: ``silhouette`` or ``stability``."""
    selection: str = "greedy"
    """``propose``: ``greedy`` or ``milp``."""
    categories: tuple[str, ...] = ()
    """``classify``: the user's own categories (no proposal)."""
    rules: bool = True
    instruction: str = ""
    """Instruction prefix template for encoders trained with one (E5-instruct, GTE-Qwen...):
    ``{goal}`` is replaced by the run's goal, e.g. ``"Instruct: {goal}\nQuery: "``."""
    expand_keyphrases: bool = False
    """Before embedding, the LLM rewrites each distinct text into goal-relevant keyphrases
    (``llm.keyphrases``); off by default: one call per ``KEYPHRASE_BATCH`` texts."""

    @property
    def constrained(self) -> bool:
        return bool(
            self.seed_label_column or self.seed_labels or self.must_link or self.cannot_link
        )

    def validate(self) -> None:
        if self.mode not in MODES:
            raise RequestError(f"unknown mode {self.mode!r}; use one of {', '.join(MODES)}")
        if self.llm_budget is not None and self.llm_budget < 0:
            raise RequestError(f"--llm-budget must be 0 or more, got {self.llm_budget}")
        if self.k_method not in ("silhouette", "stability"):
            raise RequestError("k_method must be 'silhouette' or 'stability'")
        if self.selection not in ("greedy", "milp"):
            raise RequestError("selection must be 'greedy' or 'milp'")
        if self.constrained and self.mode != "cluster":
            raise RequestError(
                "seed labels and must-link / cannot-link pairs steer --mode cluster only"
            )
        if self.categories and self.mode != "classify":
            raise RequestError("categories are for --mode classify")
        # The template's fields and syntax; whether the run has a goal is checked with it.
        resolve_instruction(self.instruction, "goal")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["seed_labels"] = len(self.seed_labels)
        data["must_link"] = len(self.must_link)
        data["cannot_link"] = len(self.cannot_link)
        data["categories"] = list(self.categories)
        return data


def pairs_from_file(path: str | Path | None) -> tuple[tuple[int, int], ...]:
    if not path:
        return ()
    return tuple((int(a), int(b)) for a, b in read_pairs(path))
