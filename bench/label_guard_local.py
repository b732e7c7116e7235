"""The label guard with the bundled local model (issue 18, item 4): SmolLM2-135M-Instruct
through llama.cpp's server names the clusters of Banking77 texts with a goal; the run's stored
faithfulness says how the LLM's explanations, the keyword ones and the shown ones compare.

    python -m bench.label_guard_local [--n 300] [--seed 0]

Needs ``make local-llm``. Prints one Markdown table row per run (append it to
``bench/results/llm_value.notes.md`` by hand: it is a measurement, not a regenerated table).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from bench.data import load_corpus
from bench.modes import machine

GOAL = "group these banking questions by what the customer wants done"


def main(argv: list[str] | None = None) -> None:
    import corpusmap
    from llm.local import serve_local_model

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    corpus = load_corpus("banking77_test")
    rows = list(zip(corpus.texts, corpus.labels, strict=True))
    random.Random(args.seed).shuffle(rows)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "banking300.jsonl"
        path.write_text(
            "".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows[: args.n]),
            encoding="utf-8",
        )
        with serve_local_model(port=8093) as server:
            start = time.perf_counter()
            handle = corpusmap.run(
                path,
                db=str(Path(folder) / "guard.db"),
                goal=GOAL,
                label_column="label",
                labeler="llm",
                llm_overrides={"base_url": server.base_url, "model": server.model},
                api_key="local",
            )
            seconds = time.perf_counter() - start
        run = handle.info
        choice = run.metrics.get("label_choice", {})
        names = [c.name for c in handle.store.load_clusters(handle.run_id)]
        usage = run.llm_usage
    print(f"machine: {machine()}")
    print(
        "| texts | clusters | LLM calls | clusters failed | kept keyword labels | faithfulness LLM | "
        "keywords | shown | s |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {args.n} | {len(names)} | {usage.get('calls', 0)} | {len(usage.get('failed_clusters', []))} | "
        f"{len(choice.get('clusters', []))} | {choice.get('llm', float('nan')):.3f} | "
        f"{choice.get('keywords', float('nan')):.3f} | {run.metrics.get('faithfulness', 0):.3f} | "
        f"{seconds:.0f} |"
    )
    print("shown names:", "; ".join(names[:12]))


if __name__ == "__main__":
    main()
