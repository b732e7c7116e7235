"""A sentence-transformers model exported to ONNX once per machine, and two runtimes for it.

The model's transformer, mean pooling and L2 normalisation are exported together by
``torch.onnx.export`` (the TorchScript exporter: it needs only the ``onnx`` package, not
optimum, which pins old transformers) to ``model-fp32.onnx``. Two encoders run that file:

- ``OnnxEncoder`` (precision ``int8``): ONNX Runtime on a copy whose every MatMul is quantised to
  int8 per channel with ``reduce_range`` (7-bit weights: no saturation on CPUs without VNNI,
  where u8 x s8 products overflow int16). Measured on all-MiniLM-L6-v2: per-tensor int8 kept
  cosine 0.94-0.97 to fp32, per-channel with reduce_range 0.991-0.993.
- ``OpenVinoEncoder`` (precisions ``openvino-fp32`` and ``openvino-bf16``): OpenVINO's CPU
  plugin, whose fused attention and MLP kernels ran the fp32 model 1.4-2.3x faster than torch's
  fp32 forward pass, and in bf16 (where the CPU runs it natively) 2.5-5x, at cosine 0.99998 to
  fp32 (bench/results/embed_speed.md).

The exported files are kept in ``folder`` (the data folder's ``models/``), so a machine exports a
model once (~5-10 s). ``onnx``, ``onnxruntime`` and ``openvino`` are optional:
``onnx_unavailable`` and ``openvino_unavailable`` say why a path cannot run, and the embedder
falls back to torch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from clustering.errors import EmbedderError

log = logging.getLogger(__name__)

OPSET = 17
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def onnx_unavailable(st_model: Any | None = None) -> str | None:
    """Why the int8 ONNX path cannot run (a missing package, a model it cannot export), or None."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as err:
        return f"{err.name} is not installed (pip install onnx onnxruntime)"
    return _unexportable(st_model)


def openvino_unavailable(st_model: Any | None = None) -> str | None:
    """Why the OpenVINO path cannot run (a missing package, a model it cannot export), or None."""
    try:
        import onnx  # noqa: F401
        import openvino  # noqa: F401
    except ImportError as err:
        return f"{err.name} is not installed (pip install onnx openvino)"
    return _unexportable(st_model)


def _unexportable(st_model: Any | None) -> str | None:
    if st_model is None:
        return None
    modules = list(st_model)
    names = [type(m).__name__ for m in modules]
    if not names or names[0] != "Transformer" or names[1:2] != ["Pooling"]:
        return f"the model's modules are {names}, not Transformer, Pooling[, Normalize]"
    if any(n != "Normalize" for n in names[2:]):
        return f"the model's modules are {names}, not Transformer, Pooling[, Normalize]"
    if getattr(modules[1], "pooling_mode", None) != "mean":
        return f"pooling {getattr(modules[1], 'pooling_mode', '?')!r} is not mean pooling"
    return None


def load_exported(precision: str, st_model: Any, folder: Path, model_id: str) -> Any:
    """The encoder of ``precision`` (``int8`` or an ``openvino-`` one) for the sentence-
    transformers model ``st_model``, exported into ``folder`` once; ``EmbedderError`` says why
    it cannot run here."""
    openvino = precision in OPENVINO_PRECISIONS
    why = (openvino_unavailable if openvino else onnx_unavailable)(st_model)
    if why:
        raise EmbedderError(why)
    import torch

    try:
        path = export_fp32(st_model, folder) if openvino else export_int8(st_model, folder)
    except Exception as err:  # torch.onnx and onnxruntime raise many types
        raise EmbedderError(
            f"exporting {model_id} to ONNX failed ({type(err).__name__}: {err})"
        ) from err
    length, threads = int(st_model.max_seq_length or 256), torch.get_num_threads()
    if not openvino:
        return OnnxEncoder(path, st_model.tokenizer, length, threads)
    try:
        return OpenVinoEncoder(path, st_model.tokenizer, length, threads, precision)
    except Exception as err:  # OpenVINO raises RuntimeError and its own types
        raise EmbedderError(
            f"OpenVINO cannot compile {model_id} ({type(err).__name__}: {err})"
        ) from err


def model_folder(folder: Path, model_id: str, source: str) -> Path:
    """Where one model's exported files live: readable name plus a hash of where it came from."""
    import torch

    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id)[:60]
    digest = hashlib.sha256(
        f"{model_id}|{source}|torch={torch.__version__}|opset={OPSET}".encode()
    ).hexdigest()[:12]
    return folder / f"{stem}-{digest}"


def export_fp32(st_model: Any, target: Path) -> Path:
    """``target/model-fp32.onnx``: the transformer, mean pooling and normalisation, exported
    unless it is already there."""
    path = target / "model-fp32.onnx"
    if path.exists():
        return path
    import torch

    target.mkdir(parents=True, exist_ok=True)
    tmp = target / f"model-fp32.{os.getpid()}.onnx"
    tokenizer = st_model.tokenizer
    sample = tokenizer(
        ["a short text", "a somewhat longer text to export"], padding=True, return_tensors="pt"
    )
    names = [k for k in INPUTS if k in sample]
    wrapper = mean_pooled(st_model[0].auto_model.float().eval(), names)
    dynamic = {k: {0: "batch", 1: "sequence"} for k in names}
    dynamic["sentence_embedding"] = {0: "batch"}
    try:
        # The tracer warns that shape checks in transformers' masking become constants: they
        # compare the mask with itself, true for every input.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                tuple(sample[k] for k in names),
                str(tmp),
                input_names=names,
                output_names=["sentence_embedding"],
                dynamic_axes=dynamic,
                opset_version=OPSET,
                dynamo=False,
            )
        tmp.replace(path)  # atomic: a concurrent process sees the whole file or none
    finally:
        tmp.unlink(missing_ok=True)
    log.info("exported %s to ONNX at %s", type(wrapper.model).__name__, path)
    return path


def export_int8(st_model: Any, target: Path) -> Path:
    """``target/model-int8.onnx``, quantised from ``export_fp32``'s file unless it is there."""
    path = target / "model-int8.onnx"
    if path.exists():
        return path
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32 = export_fp32(st_model, target)
    tmp = target / f"model-int8.{os.getpid()}.onnx"
    try:
        # quantize_dynamic suggests a pre-processing step on the root logger: measured no gain.
        with warnings.catch_warnings(), _quiet_root_logger():
            warnings.simplefilter("ignore")
            quantize_dynamic(
                str(fp32),
                str(tmp),
                weight_type=QuantType.QInt8,
                per_channel=True,
                reduce_range=True,
            )
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("quantised %s to int8 at %s", fp32, path)
    return path


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def mean_pooled(model: Any, names: list[str]) -> Any:
    """The transformer, masked mean pooling and L2 normalisation, as one exportable module
    (torch is imported here, so importing this module stays cheap)."""
    import torch

    class MeanPooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            feed = dict(zip(names, inputs, strict=True))
            hidden = self.model(**feed).last_hidden_state
            mask = feed["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    return MeanPooled()


class OnnxEncoder:
    """``encode`` like sentence-transformers', through an ONNX Runtime session."""

    def __init__(self, path: Path, tokenizer: Any, max_seq_length: int, threads: int) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.dimension = int(self.session.get_outputs()[0].shape[-1])

    def get_sentence_embedding_dimension(self) -> int:
        return self.dimension

    def encode(self, texts: Sequence[str], batch_size: int = 64, **_: Any) -> np.ndarray:
        """Normalised vectors, one text per forward pass (``batch_size`` only sets how many
        texts are tokenized at a time). Dynamic quantisation scales activations by the range of
        the whole input tensor, so in a batch a text's vector would depend on the texts beside
        it (cosine ~0.99 between two batchings of the same text): one at a time, a text always
        gets the same vector, as the embedding cache assumes. Alone, a text needs no padding."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        step = max(1, batch_size) * 8
        for start in range(0, len(texts), step):
            enc = self.tokenizer(
                list(texts[start : start + step]),
                truncation=True,
                max_length=self.max_seq_length,
            )
            for row in range(len(enc["input_ids"])):
                feed = {
                    k: np.asarray(enc[k][row], dtype=np.int64)[None, :] for k in self.input_names
                }
                out[start + row] = self.session.run(None, feed)[0][0]
        return out


OPENVINO_PRECISIONS = {"openvino-fp32": "f32", "openvino-bf16": "bf16"}
"""corpusmap's precision names for OpenVINO, and the inference precision hint each sets."""
OPENVINO_BATCH_SIZE = 32
"""Texts per OpenVINO forward pass, sorted by length so that a batch pads little. Titles, 2
quiet cores: 574 / 700 / 738 / 687 / 583 texts/s at 8 / 16 / 32 / 64 / 128; 256-token posts
44-47 at every size. Two streams with asynchronous requests (OpenVINO's THROUGHPUT hint) added
5% on titles and nothing on posts: not worth a callback per batch."""


class OpenVinoEncoder:
    """``encode`` like sentence-transformers', through an OpenVINO compiled model.

    A text's vector does not depend on the texts batched with it (the mask keeps padding out;
    measured cosine 1.000000 between batch sizes 1 and 64), so the embedding cache holds. Each
    ``encode`` call has an infer request of its own: one shared request refuses a second thread
    ("Infer Request is busy"), and the app's encoder serves every session."""

    def __init__(
        self, path: Path, tokenizer: Any, max_seq_length: int, threads: int, precision: str
    ) -> None:
        import openvino

        core = openvino.Core()
        self.compiled = core.compile_model(
            core.read_model(str(path)),
            "CPU",
            {
                "INFERENCE_PRECISION_HINT": OPENVINO_PRECISIONS[precision],
                "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_NUM_THREADS": max(1, threads),
            },
        )
        self.input_names = [i.get_any_name() for i in self.compiled.inputs]
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.dimension = int(self.compiled.outputs[0].get_partial_shape()[-1].get_length())

    def get_sentence_embedding_dimension(self) -> int:
        return self.dimension

    def encode(self, texts: Sequence[str], batch_size: int = 64, **_: Any) -> np.ndarray:
        """Normalised vectors, ``OPENVINO_BATCH_SIZE`` texts of like length per forward pass."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        request = self.compiled.create_infer_request()
        for start in range(0, len(texts), OPENVINO_BATCH_SIZE):
            rows = order[start : start + OPENVINO_BATCH_SIZE]
            enc = self.tokenizer(
                [texts[i] for i in rows],
                padding=True,
                truncation=True,
                max_length=self.max_seq_length,
                return_tensors="np",
            )
            feed = {k: np.asarray(enc[k], dtype=np.int64) for k in self.input_names}
            out[rows] = request.infer(feed)[0]
        return out
