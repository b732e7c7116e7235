"""The one workflow every run goes through, whatever its mode, size or backend (issue 12).

``execute(store, request)`` reads as the story of a stored run:

1. check the request against the corpus (columns, seeds, pairs) and the LLM it will reach;
2. open the run's LLM session and plan its calls (``on_plan`` sees the plan before any call);
3. create the run, or continue the newest unfinished run with the same request whose process
   is gone (``kill -9``, a crash): embeddings come from the cache, a stored assignment is kept,
   LLM answers already received come from the call cache;
4. embed → reduce → cluster (the mode's strategy, ``corpusmap.strategies``) → summarise →
   label → measure → rules and hierarchy, each stage saved as it completes;
5. mark the run ``completed`` only once every output its request asked for is stored.

An error marks the run ``failed`` with its message (what was saved stays) and is raised again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from clustering.cached_embedding import embed_texts, uncached_texts
from clustering.embed import plain_encoder
from clustering.faithfulness import explanation_faithfulness, guard_llm_labels
from clustering.pipeline import measure
from clustering.sample_assign import BatchMapper
from clustering.summarize import summarize_clusters
from clustering.types import Assignment, Embedder, Labeler, ProgressCallback, no_progress
from corpusmap import service
from corpusmap.errors import CorpusmapError
from corpusmap.llm_session import LLMSession, llm_settings_from
from corpusmap.plan import keyphrase_budget_left, plan_llm
from corpusmap.request import RunRequest
from corpusmap.strategies import (
    ModeOutcome,
    build_constraints,
    compute_mode,
    constrained_findings,
    goal_embedder,
    name_clusters,
)
from corpusmap.structure import add_structure
from storage import RunInfo, Store

log = logging.getLogger(__name__)

KEPT_STAGES = ("cluster", "summarize", "label", "metrics")
"""Saved stages after which a resumed run keeps its stored assignment (cluster mode only: the
LLM modes recompute theirs, every answer then coming from the call cache)."""


def execute(
    store: Store,
    request: RunRequest,
    *,
    api_key: str | None = None,
    embedder: Embedder | None = None,
    labeler: Labeler | None = None,
    progress: ProgressCallback = no_progress,
    on_created: Callable[[int], None] | None = None,
    on_plan: Callable[[dict[str, Any]], None] | None = None,
    batch_mapper: BatchMapper | None = None,
    resume: bool = True,
) -> int:
    """Run ``request`` on its stored corpus (``request.corpus_id``); returns the run id.

    ``api_key`` reaches the LLM session only (never stored). ``embedder`` / ``labeler`` replace
    the ones the request names (a preloaded encoder, a test's own labeler); they are stored
    under their own names. ``batch_mapper`` runs a sampled run's assignment batches elsewhere
    (default: Ray's tasks with ``request.ray``, else this process).
    """
    if request.corpus_id is None:
        raise CorpusmapError("execute needs a stored corpus: store the file first (api.run)")
    settings = llm_settings_from({**request.llm.overrides(), "api_key": api_key})
    request.validate(llm_configured=settings is not None)
    corpus = store.load_corpus(request.corpus_id)
    truth = service.truth_column(corpus, request.label_column)
    index = corpus.nonempty_index
    texts = [corpus.texts[i] for i in index]
    doc_ids = store.document_ids(request.corpus_id)[index]
    constraints = build_constraints(corpus, index, request.options)
    session = LLMSession(request, store, settings, labeler=labeler)
    try:
        encoder = _encoder(request, embedder, session, store, texts)
        plan = _plan(request, session, encoder, store, texts)
        if on_plan is not None:
            on_plan(plan)
        # The workspace's storage quota and daily LLM calls, before anything is stored.
        store.check_run_limits(int(plan.get("calls", 0)))
        run, resumed = _open_run(store, request, encoder, session, resume)
        session.bind(run.id)
        if on_created is not None:
            on_created(run.id)
        work = _Run(store, run, request, encoder, session, plan, progress)
        work.batch_mapper = batch_mapper or work.default_mapper()
        work.go(texts, doc_ids, truth, constraints, resumed)
        return run.id
    finally:
        session.close()


def _encoder(
    request: RunRequest,
    embedder: Embedder | None,
    session: LLMSession,
    store: Store,
    texts: Sequence[str],
) -> Embedder:
    """The request's encoder: the model (or Ray's actors), its instruction prefix, and keyphrase
    expansion through the session's LLM."""
    if embedder is None and request.ray:
        from corpusmap import distributed

        distributed.connect(request.ray)
        embedder = distributed.RayEmbedder(request.embedding.model)
    base = embedder or _model(request)
    encoder = goal_embedder(base, request.options, request.pipeline)
    if session.expander is not None:
        from llm.keyphrases import KeyphraseEmbedder

        encoder = KeyphraseEmbedder(encoder, session.expander, request.goal)
    return encoder


def _model(request: RunRequest) -> Any:
    """The request's sentence-transformers encoder (one per model and precision per process)."""
    return service.get_embedder(request.embedding.model, precision=request.embedding.precision)


def preload_model(request: RunRequest) -> None:
    """Load the request's model in a background thread while the caller reads and stores the
    corpus (``api.run``): the import, load and compile of a cold process (~3-5 s) leave the
    critical path. The run then finds the model loaded, or waits for the load under way; a load
    that fails here fails again, with its message, where the run asks for the model."""
    if request.ray:
        return

    def load() -> None:
        try:
            _model(request).encoder  # noqa: B018 - loading is the point
        except Exception as err:  # the run reports it; this thread only saves time
            log.debug("preloading the model failed: %s", err)

    threading.Thread(target=load, name="corpusmap-load-model", daemon=True).start()


def _plan(
    request: RunRequest, session: LLMSession, encoder: Embedder, store: Store, texts: list[str]
) -> dict[str, Any]:
    """The LLM plan (calls and tokens at most); keyphrase expansion's calls come first and the
    mode's steps get what is left of the budget."""
    options = request.options
    todo = uncached_texts(texts, encoder, store) if session.expander is not None else None
    plan = plan_llm(texts, options, request.pipeline, keyphrase_texts=todo)
    session.start_steps(
        options, keyphrase_budget_left(options.llm_budget, plan.get("keyphrase_calls", 0))
    )
    if session.asker is None and session.expander is None:
        plan = {"calls": 0}
    return plan


def _open_run(
    store: Store, request: RunRequest, encoder: Embedder, session: LLMSession, resume: bool
) -> tuple[RunInfo, RunInfo | None]:
    """The run to work on: an unfinished one with the same request, claimed, or a new one."""
    assert request.corpus_id is not None
    settings: dict[str, Any] = {
        "config": request.resume_key(),
        "embedder": encoder.model_id,
        "labeler": _labeler_name(request, session),
        "mode": request.mode,
        "goal": request.goal or "",
        "label_column": request.label_column or "",
    }
    resumed = service.claim_unfinished_run(store, request.corpus_id, settings) if resume else None
    if resumed is not None:
        return resumed, resumed
    run_id = store.create_run(
        request.corpus_id,
        seed=request.pipeline.random_state,
        versions=service.package_versions(),
        name=request.name,
        owner=service.process_owner(),
        **settings,
    )
    return store.get_run(run_id), None


def _labeler_name(request: RunRequest, session: LLMSession) -> str:
    if request.mode in ("propose", "classify"):
        return f"{request.mode}-llm" if session.asker is not None else "keywords"
    return session.labeler.name


class _Run:
    """One run's stages, saved as they complete."""

    def __init__(
        self,
        store: Store,
        run: RunInfo,
        request: RunRequest,
        encoder: Embedder,
        session: LLMSession,
        plan: dict[str, Any],
        progress: ProgressCallback,
    ) -> None:
        self.store, self.run, self.request = store, run, request
        self.encoder, self.session, self.plan, self.progress = encoder, session, plan, progress
        self.timings: dict[str, Any] = {}
        self.batch_mapper: BatchMapper | None = None
        self._start = time.perf_counter()

    def stage_done(self, stage: str, *, resumed: bool = False) -> None:
        seconds = round(time.perf_counter() - self._start, 3)
        if not (resumed and stage in self.timings):  # a resumed stage keeps its first timing
            self.timings[stage] = seconds
        self._start = time.perf_counter()
        self.store.save_stage(self.run.id, stage, self.timings)

    def go(
        self,
        texts: list[str],
        doc_ids: np.ndarray,
        truth: list[Any] | None,
        constraints: Any,
        resumed: RunInfo | None,
    ) -> None:
        store, run_id, request = self.store, self.run.id, self.request
        config, options = request.pipeline, request.options
        warnings = service.long_text_warnings(texts, self.encoder)
        if resumed is not None:
            self.timings = dict(resumed.timings)
            warnings.append(
                f"continued interrupted run #{run_id} after its saved stage {resumed.stage!r}"
            )
        store.save_run_warnings(run_id, warnings)
        log.info("run #%d (%s mode): %d texts", run_id, request.mode, len(texts))
        try:
            self.progress("embed", 0.0, f"embedding {len(texts):,} texts")
            vectors, counts = embed_texts(texts, self.encoder, store, progress=self.progress)
            if "embed" not in self.timings:  # a resumed run keeps what its first embed did
                self.timings.update({f"embed_{k}": v for k, v in counts.items()})
                self.timings.update(precision_timings(self.encoder))
            self.stage_done("embed", resumed=resumed is not None)

            outcome = self._kept(resumed, texts, doc_ids, constraints)
            measured: dict[str, Any] | None = None  # the clusters' metrics, once per process
            if outcome is None:
                self.progress("reduce", 0.0, "laying out the map (UMAP)")
                outcome = compute_mode(
                    texts,
                    vectors,
                    self.encoder,
                    replace(options, llm_budget=self._steps_budget()),
                    config,
                    constraints,
                    self.session.asker,
                    batch_mapper=self.batch_mapper,
                    on_reduced=lambda: self._reduced(options),
                )
                store.save_assignment(run_id, doc_ids.tolist(), outcome.assignment, outcome.coords)
                # Saved now so that a run resumed after this stage keeps them.
                measured = measure(outcome.space, outcome.assignment.labels, truth)
                early = {**measured, **outcome.metrics}
                store.save_metrics(run_id, {k: v for k, v in early.items() if v is not None})
                self.stage_done("cluster")

            self.progress("summarize", 0.0, f"summarising {outcome.assignment.n_clusters} clusters")
            summaries = summarize_clusters(
                texts,
                vectors,
                outcome.assignment,
                goal=config.goal,
                n_representatives=config.n_representatives,
                embedder=self.encoder,
            )
            store.save_clusters(run_id, summaries)
            self.stage_done("summarize")

            self.progress("label", 0.0, f"naming {len(summaries)} clusters")
            named = name_clusters(summaries, outcome, self.session.labeler, options)
            # The guard judges names a labeler gave to clusters it did not make. A goal-driven
            # mode's categories are the clusters themselves (its texts were assigned to those
            # names), so they are never swapped for keywords, like the user's own categories.
            choice = (
                None
                if outcome.labels
                else guard_llm_labels(
                    vectors, outcome.assignment.labels, named, summaries, self.encoder
                )
            )
            labels = list(choice.labels) if choice is not None else named
            faith = explanation_faithfulness(
                vectors, outcome.assignment.labels, labels, self.encoder
            )
            store.save_clusters(
                run_id,
                summaries,
                labels,
                faithfulness=faith.per_cluster,
                alternatives=choice.alternatives if choice is not None else None,
            )
            self.stage_done("label")

            self.progress("metrics", 0.0, "measuring, rules and hierarchy")
            if measured is None:  # a resumed run: the clustering stage ran in another process
                measured = measure(outcome.space, outcome.assignment.labels, truth)
            metrics = {
                **measured,
                **outcome.metrics,
                "faithfulness": faith.overall,
            }
            if choice is not None:
                metrics["label_choice"] = {**choice.to_dict(), "sentence": choice.summary()}
            store.save_metrics(run_id, {k: v for k, v in metrics.items() if v is not None})
            add_structure(
                store,
                run_id,
                options,
                self.encoder,
                self.session.labeler,
                self.session.asker,
                config,
                vectors=vectors,
            )
            usage = self.session.usage(self.plan, self.encoder)
            if usage:
                store.save_llm_usage(run_id, usage)
            self.stage_done("metrics")
            self.progress("metrics", 1.0, "done")
            store.finish_run(run_id)
        except BaseException as err:
            # Stages saved so far stay; the run says where and why it stopped.
            store.fail_run(run_id, f"{type(err).__name__}: {err}")
            raise

    def _reduced(self, options: Any) -> None:
        self.stage_done("reduce")
        self.progress("cluster", 0.0, f"{options.mode} mode: clustering")

    def _steps_budget(self) -> int | None:
        return keyphrase_budget_left(
            self.request.options.llm_budget, self.plan.get("keyphrase_calls", 0)
        )

    def default_mapper(self) -> BatchMapper | None:
        if not self.request.ray:
            return None
        from corpusmap import distributed

        return distributed.RayBatchMapper()

    def _kept(
        self,
        resumed: RunInfo | None,
        texts: list[str],
        doc_ids: np.ndarray,
        constraints: Any,
    ) -> ModeOutcome | None:
        """A resumed cluster-mode run's stored assignment, when it got that far."""
        if resumed is None or resumed.stage not in KEPT_STAGES or self.request.mode != "cluster":
            return None
        stored = self.store.load_assignments(resumed.id)
        if stored["document_id"].tolist() != [int(d) for d in doc_ids]:
            log.warning(
                "run #%d: stored assignment does not match the corpus; redoing it", resumed.id
            )
            return None
        assignment = Assignment(
            stored["cluster_id"].to_numpy(np.int64), stored["probability"].to_numpy(np.float64)
        )
        coords = stored[["x", "y"]].to_numpy(np.float32)
        log.info("run #%d: kept its %d clusters", resumed.id, assignment.n_clusters)
        found = {k: v for k, v in resumed.metrics.items() if k != "faithfulness"}
        if self.request.options.constrained:
            found = constrained_findings(assignment.labels, constraints)
        return ModeOutcome(assignment, coords, coords, (), found)


def precision_timings(encoder: Embedder) -> dict[str, str]:
    """The precision the vectors were computed in and why (issue 13), stored with the run's
    timings: ``run_embedder`` rebuilds the same encoder, and the app and the CLI show it.
    Encoders that do not choose a precision (Ray's actors, test doubles) store nothing."""
    base = plain_encoder(encoder)
    precision = getattr(base, "precision", None)
    if not isinstance(precision, str) or not precision:
        return {}
    reason = getattr(base, "precision_reason", "")
    log.info("embedding precision %s: %s", precision, reason)
    return {"embed_precision": precision, "embed_precision_reason": str(reason)}
