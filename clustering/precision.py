"""Which numeric precision the encoder runs in, chosen by the hardware and by measurement.

The issue this answers (#13): bf16 on every CPU made the embed stage 2.5-5x *slower* than fp32
on an AVX2-only AMD EPYC (Zen 3), where torch runs bf16 through a slow fallback, while it ran
~2x faster than fp32 on a CPU with native bf16 (AVX512-BF16 / AMX). So:

- CUDA: fp16 (native, measured long ago, unchanged). MPS and others: fp32.
- CPU: fp32, unless the CPU runs bf16 natively (``avx512_bf16`` / ``amx_bf16`` in
  /proc/cpuinfo), or a short calibration on this machine (``calibrate``) measured another
  candidate faster than fp32 at a mean cosine to fp32 of at least ``MIN_COSINE[candidate]``.
  The calibration is cached per machine and model (``CalibrationCache``), so it runs once.

The decision is a pure function of a ``CpuInfo`` and a ``Calibration``, so tests feed it any CPU.

Candidates measured on CPU (all-MiniLM-L6-v2, 2 cores; bench/results/embed_speed.md):
- ``openvino-bf16`` / ``openvino-fp32``: OpenVINO on the model exported to ONNX; bf16 2.5-5x
  torch's fp32 forward pass where bf16 is native, cosine 0.99998; fp32 1.4-2.3x, cosine 1.0.
- ``int8``: ONNX Runtime, the model exported by torch.onnx and its MatMuls quantised to int8
  per channel with ``reduce_range`` (``clustering.onnx_encoder``): 2.5-4x fp32, cosine ~0.992.
- ``bf16``: 1.3-2x fp32 where native, cosine ~0.9999; 2.5-5x slower than fp32 where not.
- torch's dynamic int8 of the Linear layers: 1.9x fp32 but cosine 0.94-0.95 (texts' nearest
  neighbours change): rejected, not a candidate.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

AUTO = "auto"
PRECISIONS = ("fp32", "fp16", "bf16", "int8", "openvino-fp32", "openvino-bf16")
"""What ``precision`` may ask for besides ``auto``. ``int8`` is ONNX Runtime's int8; the
``openvino-`` ones are OpenVINO's CPU plugin in that precision (``clustering.onnx_encoder``)."""
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
"""/proc/cpuinfo flags of CPUs whose bf16 matmuls run in hardware (AVX512-BF16, AMX)."""
MIN_COSINE = {
    "fp32": 1.0,
    "fp16": 0.999,
    "bf16": 0.999,
    "int8": 0.99,
    "openvino-fp32": 0.999,
    "openvino-bf16": 0.999,
}
"""Least mean cosine to fp32 at which calibration may choose a candidate: a rounding-only
precision must be near-identical (0.999); int8 must keep 0.99, where clustering NMI stayed
within 0.005 of fp32 (issue #13)."""
MIN_SPEEDUP = 1.1
"""A candidate must beat fp32 by 10% in calibration: timings on a shared machine vary ~±10%."""
CALIBRATION_VERSION = 8
"""Bump when the candidates, how they run (7: OpenVINO THROUGHPUT) or the calibration texts
(8: two per call) change: older measurements are redone."""
WARM_UP_ROUNDS = 3
"""Untimed passes before calibration times: torch's first 2-3 calls on a new input shape ran
10-30x slower than later ones (0.6-0.9 s against 0.02-0.4 s), which made fp32 look 8x slower
than int8 with one warm-up pass."""

_SHORT = [
    "How do I merge two dictionaries in a single expression?",
    "Refund still not received after two weeks",
    "Stocks fall as oil prices climb to a record high",
    "Why does my query return duplicate rows after a join?",
    "Local team wins the championship in overtime",
    "Can I change the PIN of my card in the app?",
    "New telescope images show a distant galaxy cluster",
    "Segmentation fault when freeing a pointer twice",
    "The council approved the budget for the new bridge",
    "Where can I see the exchange rate for a transfer?",
    "Researchers find a gene linked to drought tolerance in wheat",
    "How to undo the last commit but keep the changes",
]
CALIBRATION_GROUPS = (
    tuple(_SHORT[:8]),
    (" ".join(_SHORT), " ".join(_SHORT[3:] + _SHORT[:3])),
    (" ".join(_SHORT[6:] + _SHORT[:6]) * 2, " ".join(_SHORT[9:] + _SHORT[:9]) * 2),
)
"""What calibration encodes, one call per group: 8 short texts, two of ~120 tokens, two of
~240 (written for this purpose, no corpus's text). Texts of unlike length go in separate calls,
as length-sorted batches of a real corpus would: one batch padding a title to 240 tokens would
charge the batched precisions for padding they never pay. Two texts at least per call, so that
OpenVINO's two streams both work, as they do on a corpus (one long text alone ran on one
stream's one thread: OpenVINO measured at half its pace, and int8 was chosen under load).
int8 (one text at a time) gains most on short texts, bf16 on long ones. Small: it runs 3 times
per candidate on the first load of a model on a machine (~2-3 s on 2 quiet cores)."""


@dataclass(frozen=True)
class CpuInfo:
    """What decides precision on a CPU: its flags and torch's capability (``AVX2``, ``AVX512``)."""

    flags: frozenset[str] = frozenset()
    capability: str = ""
    model: str = ""
    n_cpus: int = 1

    @property
    def native_bf16(self) -> bool:
        return any(f in self.flags for f in NATIVE_BF16_FLAGS)

    @property
    def key(self) -> str:
        """Same on every start of the same machine: its CPU model, capability and bf16 flags."""
        bf16 = ",".join(f for f in NATIVE_BF16_FLAGS if f in self.flags) or "no-bf16"
        return f"{self.model or 'cpu'}|{self.capability or '?'}|{bf16}|{self.n_cpus}cpu"

    def describe(self) -> str:
        bf16 = ", ".join(f for f in NATIVE_BF16_FLAGS if f in self.flags) or "no native bf16"
        return f"{self.model or 'CPU'} ({self.capability or 'unknown capability'}, {bf16})"


def read_cpu_info(cpuinfo: str | Path = "/proc/cpuinfo") -> CpuInfo:
    """This machine's ``CpuInfo``; empty flags where /proc/cpuinfo is missing (macOS, Windows)."""
    flags: set[str] = set()
    model = ""
    try:
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            name, _, value = line.partition(":")
            name = name.strip()
            if name in ("flags", "Features") and not flags:
                flags = set(value.split())
            elif name == "model name" and not model:
                model = value.strip()
    except OSError:
        pass
    try:
        import torch

        capability = str(torch.backends.cpu.get_cpu_capability())
        threads = torch.get_num_threads()
    except (ImportError, AttributeError):  # pragma: no cover - torch is a hard dependency
        capability, threads = "", os.cpu_count() or 1
    return CpuInfo(frozenset(flags), capability, model, threads)


@dataclass(frozen=True)
class Calibration:
    """Texts per second and mean cosine to fp32 of each candidate, measured on one machine."""

    rates: dict[str, float] = field(default_factory=dict)
    cosines: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Calibration:
        rates = {str(k): float(v) for k, v in dict(data.get("rates", {})).items()}  # type: ignore[call-overload]
        cosines = {str(k): float(v) for k, v in dict(data.get("cosines", {})).items()}  # type: ignore[call-overload]
        return cls(rates, cosines, float(data.get("seconds", 0.0)))  # type: ignore[arg-type]


@dataclass(frozen=True)
class PrecisionChoice:
    precision: str
    reason: str
    """One sentence: why this precision, with the measured figures where there are some."""


def cpu_candidates(
    cpu: CpuInfo, onnx_available: bool, openvino_available: bool = False
) -> list[str]:
    """What calibration measures on this CPU, fp32 first (the reference). bf16 only where the
    CPU runs it natively: elsewhere torch and OpenVINO emulate it, 2.5-5x slower than fp32."""
    candidates = ["fp32"]
    if cpu.native_bf16:
        candidates.append("bf16")
    if onnx_available:
        candidates.append("int8")
    if openvino_available:
        candidates.append("openvino-fp32")
        if cpu.native_bf16:
            candidates.append("openvino-bf16")
    return candidates


def choose_precision(
    device: str,
    cpu: CpuInfo,
    requested: str = AUTO,
    calibration: Calibration | None = None,
) -> PrecisionChoice:
    """The precision to encode in on ``device``, and why. ``requested`` other than ``auto`` wins."""
    if requested != AUTO:
        return PrecisionChoice(requested, f"{requested} was asked for")
    if device.startswith("cuda"):
        return PrecisionChoice("fp16", "CUDA GPUs run fp16 natively")
    if device != "cpu":
        return PrecisionChoice("fp32", f"fp32 on {device}")
    if calibration is not None and "fp32" in calibration.rates:
        base = calibration.rates["fp32"]
        good = {
            p: rate
            for p, rate in calibration.rates.items()
            if p != "fp32"
            and calibration.cosines.get(p, 0.0) >= MIN_COSINE.get(p, 1.0)
            and rate >= base * MIN_SPEEDUP
        }
        if good:
            # Rates within MIN_SPEEDUP of the fastest are a tie on a shared machine: the
            # candidate nearest to fp32 among them wins.
            fastest = max(good.values())
            tied = [p for p, rate in good.items() if rate * MIN_SPEEDUP >= fastest]
            best = max(tied, key=lambda p: (calibration.cosines.get(p, 0.0), good[p]))
            return PrecisionChoice(
                best,
                f"{best} encoded {good[best]:.0f} texts/s against {base:.0f} for fp32 on this "
                f"CPU ({cpu.describe()}), at mean cosine {calibration.cosines[best]:.4f} to fp32",
            )
        measured = ", ".join(
            f"{p} {r:.0f}/s cos {calibration.cosines.get(p, 0):.4f}"
            for p, r in calibration.rates.items()
        )
        return PrecisionChoice(
            "fp32", f"no candidate beat fp32 at the required cosine on this CPU ({measured})"
        )
    if cpu.native_bf16:
        return PrecisionChoice("bf16", f"the CPU runs bf16 natively ({cpu.describe()})")
    return PrecisionChoice(
        "fp32",
        f"the CPU has no native bf16 ({cpu.describe()}), where bf16 ran 2.5-5x slower than fp32",
    )


Encode = Callable[[Sequence[str]], np.ndarray]


def calibrate(
    encoders: Mapping[str, Encode], groups: Sequence[Sequence[str]] = CALIBRATION_GROUPS
) -> Calibration:
    """Time each encoder on the text ``groups``, one call per group (``WARM_UP_ROUNDS``, then
    two rounds alternating between encoders, the faster round kept), and compare its vectors
    with those of ``encoders["fp32"]``."""
    start = time.perf_counter()
    texts = [t for group in groups for t in group]

    def encode_all(encode: Encode) -> np.ndarray:
        return np.vstack([np.asarray(encode(list(group))) for group in groups])

    vectors = {name: unit_rows(encode_all(encode)) for name, encode in encoders.items()}
    for _ in range(WARM_UP_ROUNDS - 1):
        for encode in encoders.values():
            encode_all(encode)
    best = dict.fromkeys(encoders, float("inf"))
    for _ in range(2):
        for name, encode in encoders.items():
            t0 = time.perf_counter()
            encode_all(encode)
            best[name] = min(best[name], time.perf_counter() - t0)
    reference = vectors["fp32"]
    return Calibration(
        rates={name: round(len(texts) / max(s, 1e-9), 1) for name, s in best.items()},
        cosines={
            name: round(float(np.mean(np.sum(reference * v, axis=1))), 5)
            for name, v in vectors.items()
        },
        seconds=round(time.perf_counter() - start, 2),
    )


def unit_rows(vectors: object) -> np.ndarray:
    """float32 rows of unit length. bf16/fp16 vectors normalised in their own precision keep
    norms up to ~1.002 (and cosines above 1) unless normalised again in float32."""
    v = np.asarray(vectors, dtype=np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), np.float32(1e-12))


CALIBRATION_LOCK_WAIT_S = 600.0
"""How long a process waits for another one's calibration before measuring itself."""


class CalibrationCache:
    """Calibrations kept in ``folder/calibration.json``, keyed by machine, model and versions."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / "calibration.json"

    @staticmethod
    def key(cpu: CpuInfo, model_id: str, versions: str) -> str:
        raw = f"v{CALIBRATION_VERSION}|{cpu.key}|{model_id}|{versions}"
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:24]

    def get(self, key: str) -> Calibration | None:
        try:
            entry = json.loads(self.path.read_text()).get(key)
        except (OSError, ValueError):
            return None
        return Calibration.from_dict(entry) if isinstance(entry, dict) else None

    def put(self, key: str, calibration: Calibration) -> None:
        try:
            data = json.loads(self.path.read_text())
            data = data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            data = {}
        data[key] = calibration.to_dict()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
            tmp.replace(self.path)  # atomic: two processes never leave half a file
        except OSError as err:  # a read-only home: measure again next time
            log.warning("cannot keep the precision calibration in %s: %s", self.path, err)

    def get_or_measure(self, key: str, measure: Callable[[], Calibration]) -> Calibration:
        """The kept calibration of ``key``, else ``measure()`` kept for next time.

        One process measures at a time (a lock file beside the cache): two processes started
        together (the app and a CLI run, two CLI runs) would otherwise each measure while the
        other loads the CPU, choose differently and embed one corpus twice in two precisions.
        The second waits and reads the first one's result."""
        known = self.get(key)
        if known is not None:
            return known
        from filelock import FileLock, Timeout

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(self.path.with_suffix(".lock"), timeout=CALIBRATION_LOCK_WAIT_S):
                known = self.get(key)
                if known is None:
                    known = measure()
                    self.put(key, known)
                return known
        except (OSError, Timeout) as err:  # read-only home, or a process stuck holding it
            log.warning("measuring without the calibration lock %s: %s", self.path, err)
            return measure()
