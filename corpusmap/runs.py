"""Starting a run from the app's form, and reading a run's stored progress back.

A run stores its last finished stage and per-stage seconds as it goes (``corpusmap.workflow``),
so progress can be read by anyone, from any tab, while the run works in the background.
"""

from __future__ import annotations

import pandas as pd

from clustering.embed import DEFAULT_MODEL as DEFAULT_EMBEDDING_MODEL
from clustering.pipeline import STAGES, PipelineConfig
from corpusmap.request import build_request
from storage import RunInfo

STAGE_TITLES = {
    "embed": "Embed texts",
    "reduce": "Reduce to 5-D and 2-D (UMAP)",
    "cluster": "Cluster (HDBSCAN, or k-means for a fixed K)",
    "summarize": "Summarise clusters (keywords, representatives)",
    "label": "Name and explain clusters",
    "metrics": "Measure quality",
}
MODE_TITLES = {
    "cluster": "Cluster",
    "propose": "Propose descriptions",
    "classify": "Label, then classify",
}
MODE_HELP = {
    "cluster": "Embed, reduce (UMAP), cluster (HDBSCAN, or k-means for a fixed K). Seed labels "
    "and must-link / cannot-link pairs steer it.",
    "propose": "The LLM reads samples and proposes goal-driven descriptions; texts are assigned "
    "to them (embeddings, then LLM checks on the uncertain ones) and the descriptions that cover "
    "the most texts with the least overlap are kept. Without an LLM: embeddings only.",
    "classify": "The LLM proposes labels over batches of texts and merges them (or takes your "
    "categories), then classifies the texts in batches. Without an LLM: nearest label by "
    "embedding.",
}
GOAL_EXAMPLES = (
    "What do customers contact us about?",
    "Which product problems come up most often?",
    "What topics do these articles cover?",
    "Why do users cancel their subscription?",
)
__all__ = [
    "DEFAULT_EMBEDDING_MODEL",
    "GOAL_EXAMPLES",
    "MODE_HELP",
    "MODE_TITLES",
    "STAGES",
    "STAGE_TITLES",
    "build_request",
    "stage_table",
]


def stage_table(run: RunInfo | None, live_stage: str = "", live_message: str = "") -> pd.DataFrame:
    """One row per stage: done / running / waiting, seconds and counts, from the stored run."""
    finished = STAGES.index(run.stage) + 1 if run is not None and run.stage in STAGES else 0
    if run is not None and run.status == "completed":
        finished = len(STAGES)
    rows = []
    for i, stage in enumerate(STAGES):
        timings = run.timings if run is not None else {}
        if i < finished:
            state = "done"
        elif i == finished and (run is None or run.status == "running"):
            state = "running"
        elif run is not None and run.status == "failed" and i == finished:
            state = "failed"
        else:
            state = "waiting"
        detail = ""
        if stage == "embed" and "embed_texts" in timings:
            detail = (
                f"{int(timings['embed_texts']):,} texts: {int(timings.get('embed_embedded', 0)):,} "
                f"embedded, {int(timings.get('embed_cache_hits', 0)):,} from the cache"
            )
            if timings.get("embed_precision"):
                detail += (
                    f"; {timings['embed_precision']}: {timings.get('embed_precision_reason', '')}"
                )
        elif state == "running" and live_stage == stage:
            detail = live_message
        rows.append(
            {
                "stage": STAGE_TITLES[stage],
                "state": state,
                "seconds": round(timings[stage], 1) if stage in timings else None,
                "detail": detail,
            }
        )
    return pd.DataFrame(rows)


def finished_fraction(run: RunInfo | None, stage: str = "", fraction: float = 0.0) -> float:
    """Share of the run done: its finished stages, plus ``fraction`` of the live ``stage`` (a
    job's progress: the embed stage reports texts done every second or so), so the bar moves
    within a long stage."""
    if run is None:
        return 0.0
    if run.status == "completed":
        return 1.0
    done = (STAGES.index(run.stage) + 1) / len(STAGES) if run.stage in STAGES else 0.0
    if stage in STAGES:
        live = (STAGES.index(stage) + min(max(fraction, 0.0), 1.0)) / len(STAGES)
        done = max(done, live)
    return done


WARM_UP_TEXTS = 64


def warm_up(embedder: object) -> float:
    """Load the embedding model and compile UMAP's numba code on a few synthetic texts, so the
    first real run in a fresh process does not pay for them (~30 s of compilation on 2 cores).
    Returns the seconds it took."""
    import time

    from clustering.pipeline import reduce_vectors
    from clustering.reduce import warm_up_layouts

    start = time.perf_counter()
    texts = [f"warm up text number {i} about topic {i % 4}" for i in range(WARM_UP_TEXTS)]
    vectors = embedder.embed(texts)  # type: ignore[attr-defined]
    reduce_vectors(vectors, PipelineConfig())  # below 4,096 texts: UMAP's own search
    warm_up_layouts(vectors)  # from 4,096: the exact graph, both layouts at once
    return time.perf_counter() - start
