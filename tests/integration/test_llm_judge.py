"""The simulated judge (bench.judge) and what it shows about the classify mode (issue 18).

The judge is a real loopback HTTP server that answers corpusmap's prompts from gold labels;
the modes reach it through the real client, asker and store.
"""

from __future__ import annotations

import csv
import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from bench.judge import SimulatedJudge
from clustering.pipeline import PipelineConfig
from corpusmap import api
from corpusmap.modes import ModeOptions
from llm.goal_prompts import check_messages, classify_messages

GOAL = "group by what the customer wants the bank to do"
N_CLASSES = 10
PER_CLASS = 30


@pytest.fixture(scope="module")
def intents(banking_rows: list[dict]) -> tuple[list[str], list[str]]:
    """300 Banking77 texts: 30 of each of 10 intents, seeded."""
    rng = np.random.default_rng(7)
    classes = sorted({r["label"] for r in banking_rows})[:N_CLASSES]
    texts, labels = [], []
    for c in classes:
        rows = [r for r in banking_rows if r["label"] == c]
        for k in sorted(rng.choice(len(rows), PER_CLASS, replace=False)):
            texts.append(rows[int(k)]["text"])
            labels.append(c)
    return texts, labels


@pytest.fixture(scope="module")
def intent_vectors(intents: tuple[list[str], list[str]], embedder) -> np.ndarray:
    return np.asarray(embedder.embed(intents[0]), dtype=np.float32)


@pytest.fixture(scope="module")
def intent_csv(tmp_path_factory: pytest.TempPathFactory, intents) -> Path:
    path = tmp_path_factory.mktemp("judge") / "intents.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(zip(*intents, strict=True))
    return path


def post(base_url: str, messages: list[dict[str, str]]) -> tuple[int, dict]:
    body = json.dumps({"model": "judge", "messages": messages}).encode()
    request = urllib.request.Request(
        f"{base_url}/chat/completions", body, {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def content(reply: dict) -> dict:
    return json.loads(reply["choices"][0]["message"]["content"])


def test_judge_refuses_a_prompt_whose_data_holds_no_known_text(intents, intent_vectors):
    texts, labels = intents
    with SimulatedJudge(texts, labels, intent_vectors, 1.0) as judge:
        unknown = ["What is the weather in Lisbon tomorrow?", "Recommend a good pizza place."]
        status, reply = post(judge.base_url, check_messages(GOAL, "anything", unknown))
        assert status == 400
        assert "no text of the data part" in reply["error"]["message"]
        no_data = [{"role": "user", "content": "Classify: " + texts[0]}]
        assert post(judge.base_url, no_data)[0] == 400

        # The same question over known texts is answered, from their gold labels.
        target = labels[0]
        description = f"The text is about {target.replace('_', ' ')}."
        batch = [texts[0], texts[-1]]  # one of the class, one of another
        status, reply = post(judge.base_url, check_messages(GOAL, description, batch))
        assert status == 200
        assert content(reply) == {"yes": [1]}
        assert judge.usage()["calls"] == 1 and judge.usage()["refused"] == 2
        assert reply["usage"]["prompt_tokens"] > 0


def test_judge_errs_towards_the_confusable_class(intents, intent_vectors):
    texts, labels = intents
    classes = sorted(set(labels))
    categories = [
        (c.replace("_", " "), f"The text is about {c.replace('_', ' ')}.") for c in classes
    ]
    with SimulatedJudge(texts, labels, intent_vectors, 0.0) as judge:
        status, reply = post(judge.base_url, classify_messages(GOAL, categories, texts[:15]))
    assert status == 200
    answers = {a["id"]: classes[a["category"] - 1] for a in content(reply)["assignments"]}
    assert len(answers) == 15
    assert all(answers[k + 1] == judge.confusable[labels[k]] for k in range(15))
    assert all(answers[k + 1] != labels[k] for k in range(15))


def test_judge_picks_the_category_named_for_a_class_over_one_found_by_embedding(
    intents, intent_vectors, embedder
):
    """Where two categories stand for one class, one named for it and a keyword one the judge
    maps to it by embedding, a model picks the named one, wherever it is listed (the judge
    picked the last listed: a right answer then looked wrong to the guard's anchors)."""
    texts, labels = intents
    with SimulatedJudge(texts, labels, intent_vectors, 1.0, embed=embedder.embed) as judge:
        # A keyword-like category whose description is a text of its class: found by embedding.
        k = next(i for i, t in enumerate(texts) if judge.class_of("Misc", t) == labels[i])
        target = labels[k]
        named = (target.replace("_", " "), f"The text is about {target.replace('_', ' ')}.")
        keyword = ("Misc", texts[k])
        other = next(c for c in sorted(set(labels)) if c != target)
        filler = (other.replace("_", " "), f"The text is about {other.replace('_', ' ')}.")
        batch = [t for t, lab in zip(texts, labels, strict=True) if lab == target][:10]
        for categories, expected in (([named, keyword, filler], 1), ([keyword, named, filler], 2)):
            status, reply = post(judge.base_url, classify_messages(GOAL, categories, batch))
            assert status == 200
            picked = {a["category"] for a in content(reply)["assignments"]}
            assert picked == {expected}, (categories[expected - 1], picked)


def run_classify(path: Path, db: Path, judge: SimulatedJudge | None, budget: int):
    return api.run(
        path,
        options=ModeOptions(mode="classify", llm_budget=budget),
        text_column="text",
        config=PipelineConfig(goal=GOAL, n_clusters=N_CLASSES),
        label_column="label",
        db=str(db),
        llm_overrides=judge.overrides() if judge is not None else None,
    ).info


@pytest.mark.slow
def test_classify_with_a_perfect_judge_puts_every_text_in_its_class(
    intents, intent_vectors, intent_csv, tmp_path, embedder
):
    texts, labels = intents
    with SimulatedJudge(texts, labels, intent_vectors, 1.0, embed=embedder.embed) as judge:
        info = run_classify(intent_csv, tmp_path / "runs.db", judge, budget=40)
        calls = judge.usage()
    stats = info.metrics["mode_stats"]
    assert stats["llm_classified"] == len(texts)  # the answers reached the assignments
    assert info.metrics["acc"] >= 0.95
    assert calls["by_kind"]["classify"] >= len(texts) // 15 and calls["refused"] == 0


@pytest.mark.slow
def test_classify_with_a_coin_flip_judge_ends_no_worse_than_without_llm(
    intents, intent_vectors, intent_csv, tmp_path, embedder
):
    texts, labels = intents
    db = tmp_path / "runs.db"
    offline = run_classify(intent_csv, db, None, budget=0).metrics["nmi"]
    with SimulatedJudge(texts, labels, intent_vectors, 0.5, embed=embedder.embed) as judge:
        for budget in (8, 40):
            nmi = run_classify(intent_csv, db, judge, budget=budget).metrics["nmi"]
            assert nmi >= offline - 0.01, (budget, nmi, offline)
        assert judge.usage()["calls"] > 0
