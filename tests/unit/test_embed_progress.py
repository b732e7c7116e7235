"""Progress you can watch (issue #13): the embed stage reports texts done, rate and time left
while it runs, the CLI prints it on stderr, and the app's bar moves within the stage."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

import clustering.cached_embedding as embed
from clustering.cached_embedding import embed_texts
from corpusmap.cli import main
from corpusmap.runs import finished_fraction
from storage.repository import RunInfo
from tests.conftest import read_jsonl_gz

LINE = re.compile(r"embedded ([\d,]+) of ([\d,]+) texts, ([\d.,]+) texts/s, .+ left")


def counts(messages: list[str]) -> list[int]:
    return [int(LINE.search(m).group(1).replace(",", "")) for m in messages if LINE.search(m)]


def test_the_embed_stage_reports_increasing_counts_rate_and_time_left(embedder, monkeypatch):
    monkeypatch.setattr(embed, "PROGRESS_SECONDS", 0.001)  # steps of MIN_PROGRESS_STEP texts
    texts = [f"question number {i} about topic {i % 7}" for i in range(100)]
    calls: list[tuple[str, float, str]] = []
    vectors, stats = embed_texts(texts + texts[:10], embedder, progress=lambda *a: calls.append(a))
    assert vectors.shape == (110, 384) and stats["embedded"] == 100
    reports = [c for c in calls if LINE.search(c[2])]
    done = counts([m for _, _, m in reports])
    assert len(done) >= 100 // embed.MIN_PROGRESS_STEP  # 32 texts a step: 4 reports
    assert done == sorted(done) and len(set(done)) == len(done) and done[-1] == 100
    fractions = [f for _, f, _ in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert {stage for stage, _, _ in calls} == {"embed"}
    assert "of 100 texts" in reports[0][2]


def test_steps_grow_to_about_progress_seconds_of_work(embedder):
    texts = [f"short title {i}" for i in range(400)]
    calls: list[str] = []
    embed_texts(texts, embedder, progress=lambda s, f, m: calls.append(m))
    done = counts(calls)
    # The first step is MIN_PROGRESS_STEP texts; later ones ~2 s of work, more than that.
    assert done[0] == embed.MIN_PROGRESS_STEP and done[-1] == 400
    assert max(np.diff(done)) > embed.MIN_PROGRESS_STEP


def test_an_embedder_with_its_own_chunk_size_is_called_once_per_chunk(embedder):
    class Chunked:
        chunk_size = 40
        model_id = embedder.model_id
        cache_key = embedder.cache_key
        sizes: list[int] = []

        def embed(self, texts):
            Chunked.sizes.append(len(texts))
            return embedder.embed(texts)

    calls: list[str] = []
    embed_texts(
        [f"text {i}" for i in range(100)], Chunked(), progress=lambda s, f, m: calls.append(m)
    )
    assert Chunked.sizes == [40, 40, 20]
    assert counts(calls) == [40, 80, 100]


def run_info(stage: str, status: str = "running") -> RunInfo:
    fields = {name: None for name in RunInfo.__dataclass_fields__}
    return RunInfo(**{**fields, "stage": stage, "status": status})


def test_the_apps_bar_moves_within_the_live_stage():
    created = run_info("created")
    assert finished_fraction(created) == 0.0
    assert finished_fraction(created, "embed", 0.5) == pytest.approx(0.5 / 6)
    assert finished_fraction(run_info("embed"), "reduce", 0.0) == pytest.approx(1 / 6)
    assert finished_fraction(run_info("embed"), "embed", 0.3) == pytest.approx(1 / 6)
    assert finished_fraction(run_info("done", "completed"), "embed", 0.1) == 1.0


@pytest.mark.slow  # the whole pipeline on 1,200 texts in fp32 (and UMAP's compilation): ~1 min
def test_the_cli_prints_embed_progress_with_counts(tmp_path, shared_data, embedder):
    rows = read_jsonl_gz("ag_news_test.jsonl.gz", 1200)
    corpus = tmp_path / "ag.jsonl"
    corpus.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    args = ["run", str(corpus), "--out", str(tmp_path / "out.csv"), "--db", str(tmp_path / "c.db")]
    result = CliRunner().invoke(main, [*args, "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if " embed " in line and LINE.search(line)]
    done = counts(lines)
    assert len(done) >= 2, result.stderr  # several seconds of embedding: a line every ~2 s
    assert done == sorted(done) and done[-1] == len({r["text"] for r in rows})
    assert all("of 1,2" in line for line in lines)  # texts done of the total (1,2xx distinct)
