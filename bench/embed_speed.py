"""Embedding throughput: the raw model forward pass vs corpusmap's embed stage, fp32 vs bf16.

    python -m bench.embed_speed [--n 5000] [--dataset stackoverflow]

"raw" is ``SentenceTransformer.encode`` on the texts (no hashing, no cache, no truncation);
"stage" is ``clustering.embed.embed_texts`` with corpusmap's embedder (hashing, de-duplication,
chunking, truncation). The target is stage >= 90 % of raw. Writes bench/results/embed_speed.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench.data import load_corpus

RESULTS = Path(__file__).parent / "results"


def texts_per_second(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--dataset", default="stackoverflow")
    args = parser.parse_args(argv)
    texts = load_corpus(args.dataset).texts[: args.n]

    from clustering.embed import SentenceTransformerEmbedder, embed_texts

    rows = []
    reference = None
    for precision in ("fp32", "bf16"):
        embedder = SentenceTransformerEmbedder(precision=precision)
        encoder = embedder.encoder  # load outside the timings
        batch = embedder.batch_size or embedder.default_batch_size
        encoder.encode(texts[:64], batch_size=batch)  # warm-up
        start = time.perf_counter()
        raw = encoder.encode(
            texts,
            batch_size=batch,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        raw_s = time.perf_counter() - start
        start = time.perf_counter()
        stage, _ = embed_texts(texts, embedder)
        stage_s = time.perf_counter() - start
        raw = np.asarray(raw, dtype=np.float32)
        if reference is None:
            reference = raw
        cosine = float(np.mean(np.sum(reference * stage, axis=1)))
        rows.append(
            (
                precision,
                texts_per_second(len(texts), raw_s),
                texts_per_second(len(texts), stage_s),
                cosine,
            )
        )
        print(f"{precision}: raw {rows[-1][1]:.0f}/s stage {rows[-1][2]:.0f}/s cos {cosine:.5f}")

    lines = [
        "# Embedding throughput (all-MiniLM-L6-v2, CPU)",
        "",
        f"{len(texts):,} texts of `{args.dataset}`; batch size = corpusmap's default. Produced by "
        "`python -m bench.embed_speed`. Shared 2-core machine: compare ratios within one run.",
        "",
        "| precision | raw forward pass texts/s | corpusmap embed stage texts/s | stage / raw | "
        "mean cosine to fp32 |",
        "|---|---:|---:|---:|---:|",
    ]
    for precision, raw_tps, stage_tps, cosine in rows:
        lines.append(
            f"| {precision} | {raw_tps:.0f} | {stage_tps:.0f} | {stage_tps / raw_tps:.2f} | "
            f"{cosine:.5f} |"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "embed_speed.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
