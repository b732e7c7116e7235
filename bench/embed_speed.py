"""Embedding throughput on this CPU: the raw fp32 forward pass against corpusmap's embed stage in
each precision and runtime (torch, ONNX Runtime int8, OpenVINO), on short titles and on 256-token
texts (issue #13).

    python -m bench.embed_speed            # 2,000 titles and 200 long posts
    python -m bench.embed_speed --quick    # 400 titles and 48 long posts, ~1 min on 2 cores

"raw fp32" is ``SentenceTransformer.encode`` in fp32 on the texts (no hashing, no cache), the
baseline of the issue's target (stage >= 2x raw fp32). Each "stage" row is
``clustering.cached_embedding.embed_texts`` with ``SentenceTransformerEmbedder(precision=...)``: hashing,
de-duplication, chunking, truncation, progress steps. "chosen" is ``precision="auto"``: what a
run on this machine uses, with the reason the embedder gives. Every variant runs ``--rounds``
times, alternating, and its fastest round is kept: the machines are shared. Short texts are
StackOverflow titles (~12 tokens); long ones are 20 Newsgroups posts, every one cut at the
model's 256-token window. Writes bench/results/embed_speed.md.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from bench.data import load_corpus

RESULTS = Path(__file__).parent / "results"
VARIANTS = ("fp32", "bf16", "int8", "openvino-fp32", "openvino-bf16", "auto")
NOTES = "## Notes"
"""Where the hand-written notes of a results file begin: a new run keeps them."""


def texts_of(dataset: str, n: int, min_chars: int = 0) -> list[str]:
    texts = [t for t in dict.fromkeys(load_corpus(dataset).texts) if len(t) >= min_chars]
    step = max(1, len(texts) // n)
    return texts[::step][:n]


def machine_lines() -> list[str]:
    import torch

    from clustering.precision import NATIVE_BF16_FLAGS, read_cpu_info

    cpu = read_cpu_info()
    simd = sorted(f for f in cpu.flags if f.startswith(("avx", "amx")) or f == "fma")
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return [
        f"- CPU: {cpu.model or 'unknown'}; `torch.backends.cpu.get_cpu_capability()` = "
        f"`{torch.backends.cpu.get_cpu_capability()}`; native bf16: "
        + (
            f"yes ({', '.join(f for f in NATIVE_BF16_FLAGS if f in cpu.flags)})"
            if cpu.native_bf16
            else f"no (none of {', '.join(NATIVE_BF16_FLAGS)})"
        ),
        f"- SIMD flags: {' '.join(simd) or 'none'}",
        f"- torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs; load average at start {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f}",
    ]


def measure(texts: list[str], rounds: int) -> tuple[list[tuple[str, float, float, float]], str]:
    """``(variant, texts/s, mean cosine, min cosine)`` rows and the auto choice's reason."""
    from clustering.cached_embedding import embed_texts
    from clustering.embed import SentenceTransformerEmbedder

    embedders = {v: SentenceTransformerEmbedder(precision=v) for v in VARIANTS}
    raw = embedders["fp32"].encoder  # the sentence-transformers model itself

    def encode_raw() -> np.ndarray:
        return np.asarray(
            raw.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False),
            dtype=np.float32,
        )

    runs = {"raw fp32": encode_raw}
    for variant, embedder in embedders.items():
        embedder.embed(texts[:8])  # load (and for auto: calibrate) outside the timings
        runs[f"stage {variant}"] = lambda e=embedder: embed_texts(texts, e)[0]
    best = dict.fromkeys(runs, float("inf"))
    vectors: dict[str, np.ndarray] = {}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            vectors[name] = run()
            best[name] = min(best[name], time.perf_counter() - start)
    reference = vectors["raw fp32"]
    rows = []
    for name in runs:
        cosines = np.sum(reference * vectors[name], axis=1)
        label = name
        if name == "stage auto":
            label = f"stage chosen ({embedders['auto'].precision})"
        elif name.startswith("stage ") and embedders[name[6:]].precision != name[6:]:
            label = f"{name} (fell back to {embedders[name[6:]].precision})"
        rows.append((label, len(texts) / best[name], float(cosines.mean()), float(cosines.min())))
    return rows, embedders["auto"].precision_reason


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="400 titles, 48 long posts")
    parser.add_argument("--short", type=int, default=None, help="number of titles")
    parser.add_argument("--long", type=int, default=None, help="number of long posts")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS / "embed_speed.md"))
    args = parser.parse_args(argv)
    n_short = args.short or (400 if args.quick else 2000)
    n_long = args.long or (48 if args.quick else 200)
    sets = {
        f"{n_short:,} StackOverflow titles (~12 tokens)": texts_of("stackoverflow", n_short),
        f"{n_long:,} 20 Newsgroups posts cut at 256 tokens": texts_of(
            "20newsgroups", n_long, min_chars=2000
        ),
    }
    lines = [
        "# Embedding throughput (all-MiniLM-L6-v2, CPU)",
        "",
        "Produced by `python -m bench.embed_speed"
        + (" --quick" if args.quick else "")
        + "`. Fastest of "
        f"{args.rounds} alternating rounds per variant; ratios are to the raw fp32 forward pass "
        "measured in the same run.",
        "",
        *machine_lines(),
        "",
    ]
    print("\n".join(lines), flush=True)
    reason = ""
    for title, texts in sets.items():
        rows, reason = measure(texts, args.rounds)
        base = rows[0][1]
        table = [
            f"## {title}",
            "",
            "| variant | texts/s | × raw fp32 | mean cosine to fp32 | min cosine |",
            "|---|---:|---:|---:|---:|",
            *(
                f"| {name} | {rate:,.1f} | {rate / base:.2f} | {mean:.5f} | {low:.5f} |"
                for name, rate, mean, low in rows
            ),
            "",
        ]
        print("\n".join(table), flush=True)
        lines += table
    lines += [f'Chosen by `precision="auto"` on this machine: {reason}.', ""]
    out = Path(args.out)
    old = out.read_text() if out.exists() else ""
    notes = old[old.index(NOTES) :] if NOTES in old else ""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + ("\n" + notes if notes else ""))
    print(lines[-2])


if __name__ == "__main__":
    main()
