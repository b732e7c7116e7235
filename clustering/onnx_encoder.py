"""int8 encoding with ONNX Runtime: a sentence-transformers model exported once per machine.

The model's transformer, mean pooling and L2 normalisation are exported together by
``torch.onnx.export`` (the TorchScript exporter: it needs only the ``onnx`` package, not
optimum, which pins old transformers), then every MatMul is quantised to int8 per channel with
``reduce_range`` (7-bit weights: no saturation on CPUs without VNNI, where u8 x s8 products
overflow int16). Measured on all-MiniLM-L6-v2: per-tensor int8 kept cosine 0.94-0.97 to fp32,
per-channel with reduce_range 0.991-0.993 (bench/results/embed_speed.md).

The exported file is kept in ``folder`` (the data folder's ``models/``), so a machine exports a
model once (~5-10 s). ``onnx`` and ``onnxruntime`` are optional: ``onnx_unavailable`` says why
this path cannot run, and the embedder falls back to torch.
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


def model_folder(folder: Path, model_id: str, source: str) -> Path:
    """Where one model's exported files live: readable name plus a hash of where it came from."""
    import onnxruntime
    import torch

    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id)[:60]
    digest = hashlib.sha256(
        f"{model_id}|{source}|torch={torch.__version__}|ort={onnxruntime.__version__}".encode()
    ).hexdigest()[:12]
    return folder / f"{stem}-{digest}"


def export_int8(st_model: Any, target: Path) -> Path:
    """``target/model-int8.onnx``, exported and quantised unless it is already there."""
    path = target / "model-int8.onnx"
    if path.exists():
        return path
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target.mkdir(parents=True, exist_ok=True)
    fp32 = target / f"model-fp32.{os.getpid()}.onnx"
    tmp = target / f"model-int8.{os.getpid()}.onnx"
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
        # compare the mask with itself, true for every input. quantize_dynamic suggests a
        # pre-processing step on the root logger: measured no gain here.
        with torch.no_grad(), warnings.catch_warnings(), _quiet_root_logger():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                tuple(sample[k] for k in names),
                str(fp32),
                input_names=names,
                output_names=["sentence_embedding"],
                dynamic_axes=dynamic,
                opset_version=OPSET,
                dynamo=False,
            )
            quantize_dynamic(
                str(fp32),
                str(tmp),
                weight_type=QuantType.QInt8,
                per_channel=True,
                reduce_range=True,
            )
        tmp.replace(path)  # atomic: a concurrent process sees the whole file or none
    finally:
        fp32.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    log.info("exported %s as int8 ONNX to %s", type(wrapper.model).__name__, path)
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
