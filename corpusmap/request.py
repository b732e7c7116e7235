"""``RunRequest``: every setting of one run, as one typed, validated value (issue 12).

The CLI, the Python API and the app build a ``RunRequest`` and nothing else;
``corpusmap.workflow.execute`` runs it; the run stores ``to_dict()`` as its config and
``RunRequest.from_dict`` reads it back (no string parsing). A setting that does not apply to the
rest of the request is refused when the request is validated, with one sentence that says what to
change (``RequestError``): nothing is ever silently ignored.

What a request holds:

- the corpus: a file (``source``, ``text_column``, ``sheet``) or a stored corpus (``corpus_id``),
  and the gold-label column (``label_column``) for NMI / ARI / ACC;
- ``pipeline``: ``clustering.PipelineConfig`` (K or automatic granularity, UMAP, seed, goal,
  sampling above ``sample_size`` texts);
- ``options``: the mode and its settings (``corpusmap.modes.ModeOptions``: seeds and pairs,
  LLM budget, hierarchy, rules, instruction prefix, keyphrase expansion);
- ``embedding``: the encoder (model name or folder, precision);
- ``labeler`` and ``llm``: who names the clusters and where the LLM is (never its key);
- ``ray``: embed and assign on a Ray cluster.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from clustering import precision as precisions
from clustering.embed import resolve_instruction
from clustering.pipeline import PipelineConfig
from corpusmap.errors import RequestError
from corpusmap.modes import ModeOptions

LABELERS = ("keywords", "llm")
PRECISIONS = (precisions.AUTO, *precisions.PRECISIONS)


@dataclass(frozen=True)
class EmbeddingSpec:
    """Which encoder embeds the texts. The instruction prefix and keyphrase expansion are the
    mode's goal-conditioning options (``ModeOptions``), since they depend on the goal."""

    model: str | None = None
    """A sentence-transformers model name or local folder; ``None`` is the bundled MiniLM."""
    precision: str = "auto"
    """``auto`` (chosen by the hardware: ``clustering.embed``), or a fixed one."""


@dataclass(frozen=True)
class LLMSpec:
    """Where the LLM is; the API key is never part of a request (it is never stored)."""

    base_url: str | None = None
    model: str | None = None
    timeout_s: float | None = None
    max_in_flight: int | None = None
    max_retries: int | None = None

    @classmethod
    def of(cls, settings: Any) -> LLMSpec:
        """The spec of ``llm.LLMSettings`` (its key left out)."""
        return cls(
            settings.base_url,
            settings.model,
            settings.timeout_s,
            settings.max_in_flight,
            settings.max_retries,
        )

    def overrides(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class RunRequest:
    """Every setting of a run (see the module docstring)."""

    source: str | None = None
    """A corpus file to read and store; or ``corpus_id`` of a stored corpus."""
    corpus_id: int | None = None
    text_column: str | None = None
    sheet: str | None = None
    label_column: str | None = None
    name: str = ""
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    options: ModeOptions = field(default_factory=ModeOptions)
    embedding: EmbeddingSpec = field(default_factory=EmbeddingSpec)
    labeler: str = "keywords"
    llm: LLMSpec = field(default_factory=LLMSpec)
    ray: str | None = None
    """``auto`` or a Ray cluster address: Ray's actors embed, assignment batches run as tasks."""

    @property
    def goal(self) -> str | None:
        return self.pipeline.goal

    @property
    def mode(self) -> str:
        return self.options.mode

    def for_corpus(self, corpus_id: int) -> RunRequest:
        """The same request on a stored corpus (after its file was read and stored)."""
        return replace(self, corpus_id=corpus_id)

    # --- validation -------------------------------------------------------------------------

    def validate(self, *, llm_configured: bool | None = None) -> RunRequest:
        """Raise ``RequestError`` (or ``ConfigError`` for one bad value) on settings that cannot
        work together; returns ``self``. ``llm_configured`` says whether an LLM endpoint will be
        reachable (``None``: not known yet, checked again when the run starts)."""
        if self.source is None and self.corpus_id is None:
            raise RequestError("give a corpus file (source) or a stored corpus (corpus_id)")
        self.pipeline.validate()
        self.options.validate()
        if self.labeler not in LABELERS:
            raise RequestError(f"unknown labeler {self.labeler!r}; use 'keywords' or 'llm'")
        if self.embedding.precision not in PRECISIONS:
            raise RequestError(
                f"unknown precision {self.embedding.precision!r}; use one of "
                f"{', '.join(PRECISIONS)}"
            )
        resolve_instruction(self.options.instruction, self.pipeline.goal)  # ConfigError says why
        for sentence in self.conflicts(llm_configured):
            raise RequestError(sentence)
        return self

    def conflicts(self, llm_configured: bool | None = None) -> list[str]:
        """Every setting that does not apply to the rest of the request, one sentence each (the
        app disables the matching widgets; ``validate`` raises the first)."""
        config, options = self.pipeline, self.options
        problems = []
        fixed_k = config.n_clusters is not None
        uses_hdbscan = options.mode == "cluster" and not options.constrained and not fixed_k
        if config.min_cluster_size is not None and not uses_hdbscan:
            why = (
                "a fixed number of clusters (k-means)"
                if options.mode == "cluster" and not options.constrained
                else "seed labels or pairs (constrained k-means)"
                if options.constrained
                else f"--mode {options.mode}"
            )
            problems.append(
                f"--min-cluster-size applies to the automatic number of clusters only, not to "
                f"{why}: drop --min-cluster-size"
            )
        if config.reassign_outliers and (options.mode == "classify" or options.constrained):
            problems.append(
                "--reassign-outliers does not apply: "
                + (
                    "classify mode puts every text in a category"
                    if options.mode == "classify"
                    else "constrained clustering leaves no outliers"
                )
                + "; drop it"
            )
        sampled_default = PipelineConfig().sample_size
        if config.sample_size != sampled_default and (
            options.mode != "cluster" or options.constrained
        ):
            problems.append(
                "--sample-size applies to the plain cluster mode only (the goal-driven modes "
                "and seeded clustering fit on every text): drop --sample-size"
            )
        if not options.hierarchy and (
            options.n_parents is not None or options.k_method != "silhouette"
        ):
            problems.append("--n-parents and --k-method shape the hierarchy: add --hierarchy")
        elif options.n_parents is not None and options.k_method != "silhouette":
            problems.append(
                "--k-method chooses the number of parents, which --n-parents fixes: drop one"
            )
        if options.selection != "greedy" and options.mode != "propose":
            problems.append("--selection is for --mode propose: drop it")
        if self.ray and (options.instruction or options.expand_keyphrases):
            problems.append(
                "--ray embeds with the plain model: drop --instruction / --expand-keyphrases, "
                "or --ray"
            )
        if llm_configured is False:
            if self.labeler == "llm":
                problems.append(NO_LLM.format(what="LLM labels need"))
            if options.expand_keyphrases:
                problems.append(
                    NO_LLM.format(
                        what="keyphrase expansion asks an LLM to rewrite every text and needs"
                    )
                    + "; or leave expansion off"
                )
            if options.llm_budget:
                problems.append(
                    NO_LLM.format(
                        what=f"--llm-budget {options.llm_budget} spends LLM calls and needs"
                    )
                    + "; or drop --llm-budget (the modes then run on embeddings alone)"
                )
        return problems

    # --- stored form --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data, stored with the run (the key is never in it)."""
        data = asdict(self)
        data["options"] = {k: _listify(v) for k, v in data["options"].items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRequest:
        """The request a run stored (``to_dict``), unchanged."""
        parts: dict[str, Any] = {k: v for k, v in data.items() if k in _FIELDS}
        parts["pipeline"] = PipelineConfig(**_known(PipelineConfig, data.get("pipeline", {})))
        parts["options"] = ModeOptions(**_tupled(_known(ModeOptions, data.get("options", {}))))
        parts["embedding"] = EmbeddingSpec(**_known(EmbeddingSpec, data.get("embedding", {})))
        parts["llm"] = LLMSpec(**_known(LLMSpec, data.get("llm", {})))
        return cls(**parts)

    def resume_key(self) -> dict[str, Any]:
        """What must be equal for an unfinished run to be continued by this request: everything
        but the corpus file's path (the stored corpus is compared) and the run's name."""
        data = self.to_dict()
        for key in ("source", "name", "corpus_id"):
            data.pop(key, None)
        return data


NO_LLM = (
    "{what} an LLM, and no LLM endpoint is configured: set OPENAI_BASE_URL (and OPENAI_API_KEY "
    "if it needs one), pass --llm-base-url, or fill in the app's Endpoint field (`corpusmap llm "
    "serve` starts a local one)"
)
_FIELDS = {f.name for f in fields(RunRequest)}


def _known(cls: Any, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _listify(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_listify(v) for v in value]
    return value


def _tupled(data: dict[str, Any]) -> dict[str, Any]:
    def tup(value: Any) -> Any:
        return tuple(tup(v) for v in value) if isinstance(value, list) else value

    return {k: tup(v) for k, v in data.items()}


def build_request(
    source: str | None = None,
    *,
    corpus_id: int | None = None,
    text_column: str | None = None,
    sheet: str | None = None,
    label_column: str | None = None,
    name: str = "",
    config: PipelineConfig | None = None,
    goal: str | None = None,
    n_clusters: int | None = None,
    min_cluster_size: int | None = None,
    random_state: int | None = None,
    reassign_outliers: bool | None = None,
    sample_size: int | None = None,
    options: ModeOptions | None = None,
    embedder: str | None = None,
    precision: str = "auto",
    labeler: str = "keywords",
    llm: LLMSpec | dict[str, Any] | None = None,
    ray: str | None = None,
) -> RunRequest:
    """A validated ``RunRequest`` from the keyword settings the CLI, the API and the app take.

    ``config`` may carry the pipeline settings; a keyword given beside it replaces that field,
    and a keyword that contradicts a value ``config`` sets otherwise is refused (never dropped).
    The LLM endpoint is checked when the run starts (``validate(llm_configured=...)``).
    """
    pipeline = config or PipelineConfig()
    given: dict[str, Any] = {
        "goal": (goal or "").strip() or None,
        "n_clusters": n_clusters,
        "min_cluster_size": min_cluster_size,
        "random_state": random_state,
        "reassign_outliers": reassign_outliers,
        "sample_size": sample_size,
    }
    default = PipelineConfig()
    for key, value in given.items():
        if value is None:
            continue
        current = getattr(pipeline, key)
        if config is not None and current != getattr(default, key) and current != value:
            raise RequestError(
                f"{key} is {value!r} but the config given with it says {current!r}: give it once"
            )
        pipeline = replace(pipeline, **{key: value})
    if isinstance(llm, dict):
        llm = LLMSpec(**_known(LLMSpec, {k: v for k, v in llm.items() if v is not None}))
    request = RunRequest(
        source=None if source is None else str(source),
        corpus_id=corpus_id,
        text_column=text_column or None,
        sheet=sheet or None,
        label_column=label_column or None,
        name=(name or "").strip(),
        pipeline=pipeline,
        options=options or ModeOptions(),
        embedding=EmbeddingSpec((embedder or "").strip() or None, precision),
        labeler=labeler,
        llm=llm or LLMSpec(),
        ray=ray or None,
    )
    return request.validate()


def stored_request(run: Any) -> RunRequest:
    """The request a stored run (``storage.RunInfo``) was made with. Runs stored before
    requests existed (a flat pipeline config and a summary of the mode) are read as well."""
    config = dict(run.config or {})
    if "pipeline" in config:
        request = RunRequest.from_dict(config)
    else:
        mode = dict(config.pop("mode_options", {}) or {})
        options = {k: v for k, v in mode.items() if k in _MODE_SCALARS}
        options["mode"] = run.mode or options.get("mode", "cluster")
        from clustering.embed import parse_model_id

        model, _ = parse_model_id((run.embedder or "").split("|keyphrases=")[0])
        request = RunRequest(
            pipeline=PipelineConfig(**_known(PipelineConfig, config)),
            options=ModeOptions(**options),
            embedding=EmbeddingSpec(model or None),
            labeler="llm" if run.labeler == "llm" else "keywords",
        )
    return replace(
        request,
        corpus_id=run.corpus_id,
        source=None,
        name=run.name or "",
        label_column=run.label_column or None,
    )


_MODE_SCALARS = (
    "mode",
    "seed_label_column",
    "llm_budget",
    "hierarchy",
    "n_parents",
    "k_method",
    "selection",
    "rules",
    "instruction",
    "expand_keyphrases",
)
