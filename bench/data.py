"""The labelled corpora of /work/shared/data, corpora with two grains built from them, and a
cache of their embeddings.

Embeddings are computed once per corpus with corpusmap's default embedder and kept as
``<cache>/<name>.npy`` (outside the repository), so quality benchmarks do not pay the embed stage.

Two-grain corpora (issue 14) carry a coarse label beside the fine one; their recipes (seed,
sizes) are the constants below, so they rebuild identically:

- ``20newsgroups_3k``: 3,000 posts drawn with ``SUBSET_SEED`` from 20 Newsgroups; fine = the
  newsgroup (20), coarse = its prefix before the first dot (7: comp, rec, sci, talk, ...).
- ``mix_3src``: all 3,080 Banking77 texts + 2,000 AG News + 2,000 StackOverflow (each drawn with
  ``SUBSET_SEED``); fine = source and label (77 + 4 + 20 = 101), coarse = the source (3). Its
  vectors are slices of the sources' cached vectors when those exist.
- ``stackoverflow_4k`` / ``ag_news_4k``: 4,000-text draws, for quick seed sweeps;
  ``banking77_1540``: half of Banking77 (about 20 texts per intent), a fine grain with few texts
  per class, as CLINC150's 30.

External corpora (issue 14: "the defaults will also be judged on labelled corpora that are not in
../shared/data") are not in the repository. ``EXTERNAL`` records where each comes from (GitHub
repository, commit, path); ``python -m bench.data --convert NAME --git-dir DIR`` reads it from a
local clone of that repository and writes ``<EXTERNAL_DIR>/NAME.jsonl.gz`` ({"text", "label"}) and
``NAME.source.json``. They load from ``CORPUSMAP_BENCH_DATA`` or ``EXTERNAL_DIR``
(``CORPUSMAP_BENCH_EXTERNAL``, default ../bench-data) when present; benches skip them, saying so,
when absent.

- ``bbc_news``: the BBC News articles of Greene & Cunningham (ICML 2006), 2,225 raw files
  ``bbc/<section>/NNN.txt`` (title line, then body), 5 sections.
- ``clinc150``: CLINC150 (Larson et al., EMNLP 2019) ``data_full.json``, ``test`` (150 intents x 30)
  plus ``oos_test`` (1,000 out-of-scope, one label): 5,500 queries, 151 labels.
- ``tweet89``: the Tweet set of Yin & Wang's GSDMM (KDD 2014), 2,472 preprocessed tweets, 89
  clusters (``{"text", "cluster"}`` lines).
- ``googlenews_t``: the GoogleNews-T set of the same repository, 11,109 news titles
  (lower-cased, stop words removed) in 152 event clusters: a fine grain of many small classes.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("CORPUSMAP_BENCH_DATA", REPO.parent / "shared" / "data"))
CACHE_DIR = Path(os.environ.get("CORPUSMAP_BENCH_CACHE", REPO.parent / "bench-cache"))
DATASETS = ("banking77_test", "ag_news_test", "stackoverflow", "20newsgroups")
MULTI_GRAIN = ("20newsgroups_3k", "mix_3src")
SUBSETS = {
    "20newsgroups_3k": ("20newsgroups", 3000),
    "stackoverflow_4k": ("stackoverflow", 4000),
    "ag_news_4k": ("ag_news_test", 4000),
    "banking77_1540": ("banking77_test", 1540),
}
MIX = {"mix_3src": (("banking77_test", None), ("ag_news_test", 2000), ("stackoverflow", 2000))}
SUBSET_SEED = 0
EXTERNAL_DIR = Path(os.environ.get("CORPUSMAP_BENCH_EXTERNAL", REPO.parent / "bench-data"))
EXTERNAL = {
    "bbc_news": {
        "repository": "dejanbatanjac/bbc-article-classify-bert",
        "commit": "8265dc84e88b82b87ce7f5b2df5bbbb1159ae922",
        "path": "bbc/<section>/NNN.txt",
    },
    "clinc150": {
        "repository": "clinc/oos-eval",
        "commit": "828f8093932c8fe6ca7936c3d2e52903b1c523de",
        "path": "data/data_full.json",
    },
    "tweet89": {
        "repository": "jackyin12/GSDMM",
        "commit": "1b344d9de28faee43ec0df0c3cf7ea57737fe14e",
        "path": "data/Tweet",
    },
    "googlenews_t": {
        "repository": "jackyin12/GSDMM",
        "commit": "1b344d9de28faee43ec0df0c3cf7ea57737fe14e",
        "path": "data/T",
    },
}
ALL_CORPORA = (
    DATASETS + MULTI_GRAIN + tuple(s for s in SUBSETS if s not in MULTI_GRAIN) + tuple(EXTERNAL)
)


@dataclass(frozen=True)
class LabelledCorpus:
    name: str
    texts: list[str]
    labels: list[str]
    coarse: list[str] | None = None
    """A second, coarser gold label per text (two-grain corpora only)."""
    parts: tuple[tuple[str, np.ndarray], ...] = ()
    """Where the rows came from: (base corpus, row indices) in order (derived corpora only)."""

    @property
    def n_classes(self) -> int:
        return len(set(self.labels))

    @property
    def n_coarse(self) -> int:
        return len(set(self.coarse)) if self.coarse is not None else 0


def draw(n_rows: int, size: int | None) -> np.ndarray:
    """The recipe's row indices: ``size`` rows drawn with ``SUBSET_SEED``, in source order."""
    if size is None or size >= n_rows:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng(SUBSET_SEED).choice(n_rows, size, replace=False))


def load_corpus(name: str) -> LabelledCorpus:
    """A corpus of ``ALL_CORPORA`` (a file of the data folder, a subset or a mixture)."""
    if name in SUBSETS:
        base_name, size = SUBSETS[name]
        base = load_base(base_name)
        rows = draw(len(base.texts), size)
        labels = [base.labels[i] for i in rows]
        coarse = [x.split(".")[0] for x in labels] if base_name == "20newsgroups" else None
        return LabelledCorpus(
            name, [base.texts[i] for i in rows], labels, coarse, ((base_name, rows),)
        )
    if name in MIX:
        texts, labels, coarse, parts = [], [], [], []
        for base_name, size in MIX[name]:
            base = load_base(base_name)
            rows = draw(len(base.texts), size)
            texts += [base.texts[i] for i in rows]
            labels += [f"{base_name}:{base.labels[i]}" for i in rows]
            coarse += [base_name] * len(rows)
            parts.append((base_name, rows))
        return LabelledCorpus(name, texts, labels, coarse, tuple(parts))
    return load_base(name)


def corpus_path(name: str) -> Path:
    """Where a base corpus's file is: the data folder, then (external corpora) ``EXTERNAL_DIR``."""
    path = DATA_DIR / f"{name}.jsonl.gz"
    if name in EXTERNAL and not path.exists():
        return EXTERNAL_DIR / f"{name}.jsonl.gz"
    return path


def available(name: str) -> bool:
    """Whether a corpus's source files are on this machine (external ones may not be)."""
    if name in SUBSETS:
        return available(SUBSETS[name][0])
    if name in MIX:
        return all(available(base) for base, _ in MIX[name])
    return corpus_path(name).exists()


def load_base(name: str) -> LabelledCorpus:
    path = corpus_path(name)
    if not path.exists() and name in EXTERNAL:
        source = EXTERNAL[name]
        raise FileNotFoundError(
            f"{path} not found: {name} is an external corpus ({source['repository']} "
            f"@ {source['commit'][:10]}, {source['path']}); clone it and run "
            f"python -m bench.data --convert {name} --git-dir CLONE/.git"
        )
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; set CORPUSMAP_BENCH_DATA to the data folder")
    texts: list[str] = []
    labels: list[str] = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            # The pipeline takes non-empty texts only; keep rows aligned with their labels.
            text = row["text"].strip() or "(empty)"
            texts.append(text)
            labels.append(str(row["label"]))
    return LabelledCorpus(name, texts, labels)


def cached_embeddings(corpus: LabelledCorpus, *, compute: bool = True) -> np.ndarray:
    """The corpus's vectors from the cache, computing and saving them on a miss."""
    path = CACHE_DIR / f"{corpus.name}.npy"
    sources = [CACHE_DIR / f"{base}.npy" for base, _ in corpus.parts]
    if corpus.parts and not path.exists() and all(p.exists() for p in sources):
        return np.vstack(
            [np.load(p)[rows] for p, (_, rows) in zip(sources, corpus.parts, strict=True)]
        )
    if path.exists():
        vectors = np.load(path)
        if len(vectors) == len(corpus.texts):
            return vectors
        log.warning(
            "%s has %d rows, corpus has %d: recomputing", path, len(vectors), len(corpus.texts)
        )
    if not compute:
        raise FileNotFoundError(f"no cached embeddings at {path}; run python -m bench.data")
    from clustering.cached_embedding import embed_texts
    from clustering.embed import SentenceTransformerEmbedder

    start = time.perf_counter()
    vectors, counts = embed_texts(corpus.texts, SentenceTransformerEmbedder())
    log.info("embedded %s: %s in %.1f s", corpus.name, counts, time.perf_counter() - start)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, vectors)
    tmp.replace(path)
    return vectors


def git_show(git_dir: Path, commit: str, path: str) -> bytes:
    import subprocess

    return subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", f"{commit}:{path}"],
        capture_output=True,
        check=True,
    ).stdout


def external_rows(name: str, git_dir: Path, commit: str | None = None) -> list[dict[str, str]]:
    """The {"text", "label"} rows of an external corpus, read at its recorded commit."""
    import subprocess

    commit = commit or EXTERNAL[name]["commit"]
    if name == "bbc_news":
        listing = subprocess.run(
            ["git", "--git-dir", str(git_dir), "ls-tree", "-r", "--name-only", commit, "bbc/"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        rows = []
        for path in sorted(p for p in listing if p.count("/") == 2 and p.endswith(".txt")):
            # A few of the original files are not UTF-8 (a pound sign in Latin-1).
            raw = git_show(git_dir, commit, path)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("latin-1")
            rows.append({"text": " ".join(text.split()), "label": path.split("/")[1]})
        return rows
    if name == "clinc150":
        data = json.loads(git_show(git_dir, commit, EXTERNAL[name]["path"]))
        return [{"text": t, "label": y} for t, y in data["test"] + data["oos_test"]]
    if name in ("tweet89", "googlenews_t"):
        lines = git_show(git_dir, commit, EXTERNAL[name]["path"]).decode("utf-8").splitlines()
        return [
            {"text": row["text"], "label": str(row["cluster"])}
            for row in map(json.loads, filter(None, lines))
        ]
    raise KeyError(name)


def convert_external(
    name: str, git_dir: Path, out_dir: Path | None = None, commit: str | None = None
) -> Path:
    """Write ``NAME.jsonl.gz`` and ``NAME.source.json`` (repository, commit, path, rows)."""
    out_dir = out_dir or EXTERNAL_DIR
    rows = external_rows(name, git_dir, commit)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    source = {**EXTERNAL[name], "rows": len(rows), "labels": len({r["label"] for r in rows})}
    source["commit"] = commit or source["commit"]
    (out_dir / f"{name}.source.json").write_text(json.dumps(source, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Fill the embedding cache of the bench corpora.")
    parser.add_argument("datasets", nargs="*", default=list(DATASETS))
    parser.add_argument("--convert", choices=sorted(EXTERNAL), help="write an external corpus")
    parser.add_argument("--git-dir", type=Path, help="the git directory of its repository")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.convert:
        if args.git_dir is None:
            parser.error("--convert needs --git-dir")
        print(convert_external(args.convert, args.git_dir))
        return
    for name in args.datasets:
        start = time.perf_counter()
        vectors = cached_embeddings(load_corpus(name))
        print(f"{name}: {vectors.shape} in {time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
