"""Large corpora through the real service path: time and peak RSS per stage at 100k and 500k.

    nice -n 10 python -m bench.large --rows 100000 --distinct 100000
    nice -n 10 python -m bench.large --rows 500000 --distinct 200000

The corpus is built from the real labelled corpora of /work/shared/data:

- every distinct real text (~49.4k, with its gold label), then
- new distinct texts made by joining two real short texts of the same label (Banking77,
  StackOverflow, AG News; "how do I ... <space> why does ..."), labelled with that label,
  until ``--distinct`` texts; the sequence is seeded, so a smaller corpus's texts are a prefix
  of a larger one's and their vectors are reused from the store;
- then rows drawn from those distinct texts until ``--rows`` (duplicates, as real logs have).

Each size runs in a fresh child process (``--child``) so its peak RSS is its own. A thread
samples RSS every 0.1 s and keeps the peak of each stage; the stage is the one the service's
progress callback last named (``faithfulness`` and ``export`` are marked here). Vectors of the
real texts can be loaded into the store's embedding cache first from the bench cache
(``bench.data``, same model and code): ``--prefill`` says so in the results, and the embed
stage then embeds only the joined texts, which gives its throughput.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import CACHE_DIR, DATASETS, load_corpus

log = logging.getLogger(__name__)

WORK_DIR = CACHE_DIR / "large"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
SHORT_DATASETS = ("banking77_test", "stackoverflow", "ag_news_test")
"""Sources of joined texts: short enough that two of them fit the model's 256 tokens."""
SEED = 8
RSS_INTERVAL_S = 0.1


# --- the corpus -----------------------------------------------------------------------------


def real_texts(datasets: tuple[str, ...] = DATASETS) -> tuple[list[str], list[str]]:
    """Every distinct real text once, with its label prefixed by its corpus."""
    texts: list[str] = []
    labels: list[str] = []
    seen: set[str] = set()
    for name in datasets:
        corpus = load_corpus(name)
        for text, label in zip(corpus.texts, corpus.labels, strict=True):
            if text not in seen:
                seen.add(text)
                texts.append(text)
                labels.append(f"{name}:{label}")
    return texts, labels


def joined_texts(seen: set[str], seed: int = SEED) -> Iterator[tuple[str, str]]:
    """Endless new distinct texts: two real short texts of one label, joined by a space."""
    pools: list[tuple[str, list[str]]] = []
    for name in SHORT_DATASETS:
        corpus = load_corpus(name)
        by_label: dict[str, list[str]] = {}
        for text, label in zip(corpus.texts, corpus.labels, strict=True):
            by_label.setdefault(label, []).append(text)
        pools += [(f"{name}:{label}", members) for label, members in sorted(by_label.items())]
    weights = np.array([len(m) for _, m in pools], dtype=np.float64)
    weights /= weights.sum()
    rng = np.random.default_rng(seed)
    while True:
        for p in rng.choice(len(pools), size=4096, p=weights):
            label, members = pools[p]
            a, b = rng.choice(len(members), size=2, replace=False)
            text = f"{members[a]} {members[b]}"
            if text not in seen:
                seen.add(text)
                yield text, label


def build_corpus(
    n_rows: int,
    n_distinct: int,
    path: Path,
    seed: int = SEED,
    datasets: tuple[str, ...] = DATASETS,
) -> dict[str, Any]:
    """Write a JSONL corpus of ``n_rows`` rows holding ``n_distinct`` distinct texts."""
    if n_distinct > n_rows:
        raise ValueError("--distinct cannot exceed --rows")
    texts, labels = real_texts(datasets)
    n_real = min(len(texts), n_distinct)
    texts, labels = texts[:n_real], labels[:n_real]
    extra = joined_texts(set(texts), seed)
    while len(texts) < n_distinct:
        text, label = next(extra)
        texts.append(text)
        labels.append(label)
    rng = np.random.default_rng(seed)
    rows = np.concatenate(
        [np.arange(n_distinct), rng.choice(n_distinct, size=n_rows - n_distinct, replace=True)]
    )
    rows = rng.permutation(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for i in rows:
            fh.write(json.dumps({"text": texts[i], "label": labels[i]}, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return {
        "rows": n_rows,
        "distinct": n_distinct,
        "real": n_real,
        "joined": n_distinct - n_real,
        "datasets": list(datasets),
    }


def prefill_cache(db: str) -> int:
    """Put the bench cache's vectors of the real texts into the store's embedding cache."""
    from clustering.cached_embedding import text_hash
    from clustering.embed import DEFAULT_MODEL
    from storage import Store

    store = Store.open(db)
    added = 0
    for name in DATASETS:
        path = CACHE_DIR / f"{name}.npy"
        if not path.exists():
            log.warning("no cached vectors for %s: its texts will be embedded in the run", name)
            continue
        corpus = load_corpus(name)
        vectors = np.load(path)
        items = {text_hash(t): v for t, v in zip(corpus.texts, vectors, strict=True)}
        present = store.get_embeddings(DEFAULT_MODEL, list(items))
        new = {h: v for h, v in items.items() if h not in present}
        store.put_embeddings(DEFAULT_MODEL, new)
        added += len(new)
    store.close()
    return added


# --- one measured run (in a child process) ----------------------------------------------------


class StagePeaks:
    """Samples this process's RSS and keeps the peak and the wall time of each named stage."""

    def __init__(self) -> None:
        import psutil

        self._process = psutil.Process()
        self.stage = "start"
        self.peaks: dict[str, float] = {}
        self.starts: dict[str, float] = {}
        self.ends: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        """CPU seconds (user + system) of each stage: on a shared machine, wall time is not."""
        self._cpu_mark = self._cpu_seconds()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> StagePeaks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.enter("end")
        self._stop.set()
        self._thread.join()

    def enter(self, stage: str) -> None:
        if stage == self.stage:
            return
        now = time.perf_counter()
        self._sample()
        self.ends[self.stage] = now
        cpu = self._cpu_seconds()
        self.cpu[self.stage] = self.cpu.get(self.stage, 0.0) + cpu - self._cpu_mark
        self._cpu_mark = cpu
        self.stage = stage
        self.starts.setdefault(stage, now)
        self._sample()

    def progress(self, stage: str, fraction: float, message: str) -> None:
        # run_pipeline names every stage as it starts, except metrics, named when it is done.
        if stage != "metrics":
            self.enter("label+metrics" if stage == "label" else stage)

    def _cpu_seconds(self) -> float:
        times = self._process.cpu_times()
        return float(times.user + times.system)

    def _sample(self) -> None:
        rss = self._process.memory_info().rss / 1024**3
        self.peaks[self.stage] = max(self.peaks.get(self.stage, 0.0), rss)

    def _run(self) -> None:
        while not self._stop.wait(RSS_INTERVAL_S):
            self._sample()

    def table(self) -> list[dict[str, Any]]:
        return [
            {
                "stage": s,
                "seconds": round(self.ends[s] - self.starts[s], 2),
                "cpu_seconds": round(self.cpu.get(s, 0.0), 2),
                "peak_rss_gb": round(self.peaks.get(s, 0.0), 2),
            }
            for s in self.starts
            if s in self.ends and s != "end"
        ]


def run_child(corpus_path: Path, db: str, sample_size: int, out: Path) -> dict[str, Any]:
    from clustering import PipelineConfig, read_corpus
    from corpusmap import service, workflow
    from corpusmap.export import write_table
    from corpusmap.request import RunRequest
    from storage import Store

    faithfulness = workflow.explanation_faithfulness
    with StagePeaks() as peaks:

        def measured_faithfulness(*args: Any, **kwargs: Any) -> Any:
            peaks.enter("faithfulness+save")
            return faithfulness(*args, **kwargs)

        workflow.explanation_faithfulness = measured_faithfulness  # type: ignore[assignment]
        peaks.enter("ingest")
        corpus = read_corpus(corpus_path)
        peaks.enter("store corpus")
        store = Store.open(db)
        corpus_id = store.add_corpus(corpus, reuse=False).id
        n_rows = corpus.n_rows
        del corpus
        peaks.enter("load corpus+model")
        config = PipelineConfig(sample_size=sample_size)
        start = time.perf_counter()
        request = RunRequest(corpus_id=corpus_id, pipeline=config, label_column="label")
        run_id = workflow.execute(store, request, progress=peaks.progress)
        run_seconds = time.perf_counter() - start
        peaks.enter("export")
        frame = service.labeled_frame(store, run_id)
        write_table(frame, WORK_DIR / f"labeled_{n_rows}.parquet")
        del frame
    run = store.get_run(run_id)
    result = {
        "rows": n_rows,
        "sample_size": sample_size,
        "run_id": run_id,
        "run_seconds": round(run_seconds, 1),
        "stages": peaks.table(),
        "max_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2),
        "timings": run.timings,
        "metrics": {k: v for k, v in run.metrics.items() if k != "silhouette_per_cluster"},
    }
    out.write_text(json.dumps(result, indent=1))
    return result


# --- the command ---------------------------------------------------------------------------


def markdown(result: dict[str, Any], build: dict[str, Any]) -> str:
    timings = result["timings"]
    lines = [
        f"### {result['rows']:,} rows, {build['distinct']:,} distinct texts "
        f"({build['real']:,} real, {build['joined']:,} joined), sample {result['sample_size']:,}",
        "",
        "| stage | wall s | CPU s | peak RSS (GB) |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {s['stage']} | {s['seconds']:.1f} | {s.get('cpu_seconds', float('nan')):.1f} "
        f"| {s['peak_rss_gb']:.2f} |"
        for s in result["stages"]
    ]
    embedded = timings.get("embed_embedded", 0)
    embed_s = next((s["seconds"] for s in result["stages"] if s["stage"] == "embed"), 0)
    m = result["metrics"]
    lines += [
        "",
        f"Peak RSS of the whole process: {result['max_rss_gb']:.2f} GB. "
        f"Embedded {embedded:,} texts ({timings.get('embed_cache_hits', 0):,} from the cache)"
        + (f", {embedded / embed_s:.0f} texts/s" if embedded and embed_s else "")
        + f". {m.get('n_clusters')} clusters, {m.get('noise_share', 0):.1%} outliers, "
        f"NMI {m.get('nmi', float('nan')):.3f} against the source labels.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--distinct", type=int, default=None, help="default: --rows")
    parser.add_argument("--sample-size", type=int, default=100_000)
    parser.add_argument("--db", default=str(WORK_DIR / "large.db"))
    parser.add_argument(
        "--prefill", action="store_true", help="real texts' vectors from bench cache"
    )
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS), help="real corpora to use")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    distinct = args.distinct or args.rows
    corpus_path = WORK_DIR / f"corpus_{args.rows}_{distinct}.jsonl"
    out = WORK_DIR / f"result_{args.rows}_{distinct}.json"
    if args.child:
        run_child(Path(args.child), args.db, args.sample_size, out)
        return
    start = time.perf_counter()
    build = build_corpus(args.rows, distinct, corpus_path, datasets=tuple(args.datasets))
    build["build_seconds"] = round(time.perf_counter() - start, 1)
    build["prefilled"] = prefill_cache(args.db) if args.prefill else 0
    print(json.dumps(build), flush=True)
    command = [sys.executable, "-m", "bench.large", "--rows", str(args.rows), "--distinct",
               str(distinct), "--sample-size", str(args.sample_size), "--db", args.db,
               "--child", str(corpus_path)]  # fmt: skip
    subprocess.run(command, check=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    result = json.loads(out.read_text())
    result["build"] = build
    RESULTS_DIR.mkdir(exist_ok=True)
    name = f"large_{args.rows}.json"
    (RESULTS_DIR / name).write_text(json.dumps(result, indent=1))
    print(markdown(result, build), flush=True)


if __name__ == "__main__":
    main()
