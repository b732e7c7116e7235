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
import json
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
TOKENIZER_FILE = "tokenizer.json"
SETTINGS_FILE = "encoder.json"
"""Beside the exported model: the tokenizer and its settings, so that a later process runs the
OpenVINO encoder without loading the model in torch (``load_openvino_alone``)."""


def onnx_unavailable(st_model: Any | None = None) -> str | None:
    """Why the int8 ONNX path cannot run (a missing package, a model it cannot export), or None."""
    return _missing("onnx", "onnxruntime") or _unexportable(st_model)


def openvino_unavailable(st_model: Any | None = None) -> str | None:
    """Why the OpenVINO path cannot run (a missing package, a model it cannot export), or None."""
    return _missing("onnx", "openvino") or _unexportable(st_model)


def _missing(*packages: str) -> str | None:
    """Which of ``packages`` is not installed, found without importing them (onnx alone takes
    ~0.8 s to import, and a load from kept files never needs it)."""
    import importlib.util

    for name in packages:
        if importlib.util.find_spec(name) is None:
            return f"{name} is not installed (pip install {' '.join(packages)})"
    return None


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
    save_tokenizer(st_model, folder)
    length, threads = int(st_model.max_seq_length or 256), torch.get_num_threads()
    if not openvino:
        return OnnxEncoder(path, st_model.tokenizer, length, threads)
    try:
        return OpenVinoEncoder(path, st_model.tokenizer, length, threads, precision)
    except Exception as err:  # OpenVINO raises RuntimeError and its own types
        raise EmbedderError(
            f"OpenVINO cannot compile {model_id} ({type(err).__name__}: {err})"
        ) from err


def load_openvino_alone(precision: str, folder: Path) -> OpenVinoEncoder | None:
    """The OpenVINO encoder of a model exported into ``folder`` earlier, built from the files
    alone: no sentence-transformers, transformers or torch model (their import and load are
    ~3-5 s of a cold run on 2 cores). None where a file is missing (an export from before the
    tokenizer was kept: the next full load writes it)."""
    if openvino_unavailable() or not (folder / SETTINGS_FILE).exists():
        return None
    import torch

    try:
        tokenizer = StandaloneTokenizer(folder)
        return OpenVinoEncoder(
            folder / "model-fp32.onnx",
            tokenizer,
            tokenizer.max_seq_length,
            torch.get_num_threads(),
            precision,
        )
    except Exception as err:  # a damaged file: the full load rebuilds what it needs
        log.warning("cannot load the exported model in %s alone: %s", folder, err)
        return None


def save_tokenizer(st_model: Any, target: Path) -> None:
    """``TOKENIZER_FILE`` and ``SETTINGS_FILE`` in ``target``, unless there; the settings file
    is written last, so that its presence means both are whole."""
    settings_path = target / SETTINGS_FILE
    tokenizer = st_model.tokenizer
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if settings_path.exists() or backend is None:  # a slow tokenizer: no standalone load
        return
    settings = {
        "max_seq_length": int(st_model.max_seq_length or 256),
        "pad_id": int(tokenizer.pad_token_id or 0),
        "pad_token": str(tokenizer.pad_token),
        "padding_side": str(tokenizer.padding_side),
        "truncation_side": str(tokenizer.truncation_side),
    }
    try:
        for name, write in (
            (TOKENIZER_FILE, lambda path: backend.save(str(path))),
            (SETTINGS_FILE, lambda path: path.write_text(json.dumps(settings))),
        ):
            tmp = target / f"{name}.{os.getpid()}.tmp"
            write(tmp)
            tmp.replace(target / name)  # atomic, like the exports
    except OSError as err:  # a read-only data folder: the full load every time
        log.warning("cannot keep the tokenizer beside the exported model: %s", err)


class StandaloneTokenizer:
    """The model's fast tokenizer through ``tokenizers`` alone, called like the transformers one
    ``OpenVinoEncoder`` is given: ids, attention mask and type ids as int64 arrays, padded to the
    longest text of the call and cut at ``max_seq_length`` tokens, special tokens included (the
    same ids: the transformers tokenizer wraps this very object)."""

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        settings = json.loads((folder / SETTINGS_FILE).read_text())
        self.max_seq_length = int(settings["max_seq_length"])
        self.tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        self.truncation_side = settings["truncation_side"]
        self.tokenizer.enable_truncation(self.max_seq_length, direction=self.truncation_side)
        self.tokenizer.enable_padding(
            direction=settings["padding_side"],
            pad_id=settings["pad_id"],
            pad_token=settings["pad_token"],
        )

    def __call__(
        self, texts: Sequence[str], max_length: int | None = None, **_: Any
    ) -> dict[str, np.ndarray]:
        """``texts`` cut at ``max_length`` tokens (default ``max_seq_length``)."""
        length = max_length or self.max_seq_length
        if (self.tokenizer.truncation or {}).get("max_length") != length:
            self.tokenizer.enable_truncation(length, direction=self.truncation_side)
        encodings = self.tokenizer.encode_batch(list(texts))
        return {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }


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
OPENVINO_BATCH_TOKENS = 2048
"""Fewer texts in a batch of long ones: at most about this many tokens (estimated from the
longest text's characters, ``CHARS_PER_TOKEN``). 32 texts of 256 tokens held 0.76 GB more of
activations than titles did (300 20 Newsgroups posts); posts ran at 44-47 texts/s at every
batch size from 8 to 128, so 8 of them cost no speed."""
CHARS_PER_TOKEN = 4
"""English averages 4-5 characters per WordPiece token; 4 errs towards smaller batches."""
"""Texts per OpenVINO forward pass, sorted by length so that a batch pads little. Titles, 2
quiet cores: 574 / 700 / 738 / 687 / 583 texts/s at 8 / 16 / 32 / 64 / 128; 256-token posts
44-47 at every size."""
OPENVINO_HINT = "THROUGHPUT"
"""OpenVINO's performance hint: THROUGHPUT runs as many streams as the CPU suits (2 on 2
cores), each batch an asynchronous request on one. On 2 quiet cores it added 5% on titles
against LATENCY (one request on both cores); on the same cores under load (load average 8.9,
other processes niced) it kept its pace while LATENCY's fell: titles 723-755 against 335-469
texts/s, 256-token posts 43-45 against 33-34, and the same vectors to the bit."""


class OpenVinoEncoder:
    """``encode`` like sentence-transformers', through an OpenVINO compiled model.

    A text's vector does not depend on the texts batched with it (the mask keeps padding out;
    measured cosine 1.000000 between batch sizes 1 and 64), so the embedding cache holds. Each
    ``encode`` call has infer requests of its own: a shared request refuses a second thread
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
                "PERFORMANCE_HINT": OPENVINO_HINT,
                "INFERENCE_NUM_THREADS": max(1, threads),
            },
        )
        self.input_names = [i.get_any_name() for i in self.compiled.inputs]
        self.requests = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.dimension = int(self.compiled.outputs[0].get_partial_shape()[-1].get_length())

    def get_sentence_embedding_dimension(self) -> int:
        return self.dimension

    def encode(self, texts: Sequence[str], batch_size: int = 64, **_: Any) -> np.ndarray:
        """Normalised vectors, ``OPENVINO_BATCH_SIZE`` texts of like length per forward pass,
        the passes queued on the compiled model's streams (``OPENVINO_HINT``)."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        # Requests taken in turn, each waited for before it takes the next batch; no callbacks
        # (a Python callback needs the GIL, which four threads encoding at once held in turn
        # while waiting for a free request of AsyncInferQueue: they deadlocked).
        requests = [self.compiled.create_infer_request() for _ in range(self.requests)]
        pending: list[np.ndarray | None] = [None] * len(requests)

        def collect(slot: int) -> None:
            rows = pending[slot]
            if rows is not None:
                requests[slot].wait()
                out[rows] = requests[slot].get_output_tensor(0).data
                pending[slot] = None

        # A call of few texts is shared out so that every stream works (8 titles: 4 + 4).
        most = max(1, min(OPENVINO_BATCH_SIZE, -(-len(texts) // len(requests))))
        start, n = 0, 0
        while start < len(texts):
            slot = n % len(requests)
            collect(slot)
            # Longest first: the batch's first text sets its padded length and so its size.
            tokens = min(self.max_seq_length, -(-len(texts[order[start]]) // CHARS_PER_TOKEN))
            size = max(1, min(most, OPENVINO_BATCH_TOKENS // max(tokens, 1)))
            rows = order[start : start + size]
            start, n = start + size, n + 1
            enc = self.tokenizer(
                [texts[i] for i in rows],
                padding=True,
                truncation=True,
                max_length=self.max_seq_length,
                return_tensors="np",
            )
            feed = {k: np.asarray(enc[k], dtype=np.int64) for k in self.input_names}
            requests[slot].start_async(feed)
            pending[slot] = rows
        for slot in range(len(requests)):
            collect(slot)
        return out
