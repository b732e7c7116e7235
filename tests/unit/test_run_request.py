"""``RunRequest`` (issue 12): every setting in one value, stored and read back unchanged, and a
setting that does not apply refused with a sentence that names it, never ignored."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from clustering import PipelineConfig
from clustering.errors import ConfigError
from corpusmap.modes import ModeOptions
from corpusmap.request import (
    EmbeddingSpec,
    LLMSpec,
    RequestError,
    RunRequest,
    build_request,
    stored_request,
)

EVERYTHING = RunRequest(
    source="tickets.csv",
    corpus_id=3,
    text_column="body",
    sheet="Sheet2",
    label_column="gold",
    name="night run",
    pipeline=PipelineConfig(
        n_clusters=None,
        min_cluster_size=9,
        min_samples=4,
        cluster_selection_method="leaf",
        merge_clusters=False,
        n_neighbors=10,
        n_components=3,
        min_dist=0.05,
        random_state=7,
        reassign_outliers=True,
        goal="what breaks",
        n_representatives=5,
        sample_size=5_000,
    ),
    options=ModeOptions(
        mode="cluster",
        llm_budget=30,
        hierarchy=True,
        n_parents=4,
        k_method="stability",
        rules=False,
        instruction="Instruct: {goal}\nQuery: ",
        expand_keyphrases=True,
    ),
    embedding=EmbeddingSpec(model="/models/e5", precision="fp32"),
    labeler="llm",
    llm=LLMSpec(base_url="http://127.0.0.1:9/v1", model="m", timeout_s=5.0, max_in_flight=2),
    ray=None,
)


def test_every_field_survives_the_stored_form():
    data = EVERYTHING.to_dict()
    assert "api_key" not in str(data)
    assert RunRequest.from_dict(data) == EVERYTHING
    seeded = dataclasses.replace(
        EVERYTHING,
        pipeline=dataclasses.replace(EVERYTHING.pipeline, sample_size=100_000),
        options=ModeOptions(
            seed_labels=((3, "refund"), (9, "card")),
            must_link=((1, 2),),
            cannot_link=((4, 5), (6, 7)),
            categories=(),
        ),
    )
    assert RunRequest.from_dict(seeded.to_dict()) == seeded


def test_every_request_field_is_stored():
    stored = set(EVERYTHING.resume_key())
    assert stored == {f.name for f in dataclasses.fields(RunRequest)} - {
        "source",
        "corpus_id",
        "name",
    }


@pytest.mark.parametrize(
    ("settings", "names"),
    [
        ({"n_clusters": 5, "min_cluster_size": 10}, "--min-cluster-size"),
        (
            {"min_cluster_size": 10, "options": ModeOptions(seed_label_column="seed")},
            "--min-cluster-size",
        ),
        ({"min_cluster_size": 10, "options": ModeOptions(mode="propose")}, "--min-cluster-size"),
        ({"reassign_outliers": True, "options": ModeOptions(mode="classify")}, "--reassign"),
        ({"sample_size": 500, "options": ModeOptions(mode="classify")}, "--sample-size"),
        ({"options": ModeOptions(n_parents=3)}, "--hierarchy"),
        ({"options": ModeOptions(k_method="stability")}, "--hierarchy"),
        ({"options": ModeOptions(selection="milp")}, "--selection"),
        ({"options": ModeOptions(instruction="q: "), "ray": "auto"}, "--ray"),
        ({"options": ModeOptions(mode="propose", seed_label_column="s")}, "--mode cluster"),
        ({"options": ModeOptions(categories=("a",))}, "classify"),
        ({"precision": "fp64"}, "precision"),
        ({"labeler": "gpt"}, "labeler"),
    ],
)
def test_a_setting_that_does_not_apply_is_refused_with_its_name(settings, names):
    with pytest.raises((RequestError, ConfigError)) as caught:
        build_request("t.csv", **settings)
    assert names in str(caught.value)


@pytest.mark.parametrize(
    ("request_", "names"),
    [
        (RunRequest(source="t.csv", labeler="llm"), "LLM labels"),
        (RunRequest(source="t.csv", options=ModeOptions(expand_keyphrases=True)), "keyphrase"),
        (RunRequest(source="t.csv", options=ModeOptions(llm_budget=20)), "--llm-budget 20"),
    ],
)
def test_what_needs_an_llm_is_refused_without_one(request_, names):
    request_.validate()  # not known yet: fine
    with pytest.raises(RequestError, match="no LLM endpoint") as caught:
        request_.validate(llm_configured=False)
    assert names in str(caught.value)
    request_.validate(llm_configured=True)


def test_keywords_beside_a_config_replace_its_fields_or_are_refused():
    merged = build_request("t.csv", config=PipelineConfig(random_state=3), goal="refunds")
    assert (merged.pipeline.random_state, merged.pipeline.goal) == (3, "refunds")
    with pytest.raises(RequestError, match="give it once"):
        build_request("t.csv", config=PipelineConfig(n_clusters=4), n_clusters=7)
    with pytest.raises(RequestError, match="corpus"):
        build_request()


def test_a_run_stored_before_requests_existed_is_read_back():
    run = SimpleNamespace(
        config={
            **PipelineConfig(n_clusters=6, goal="g").to_dict(),
            "mode_options": {"rules": False, "seed_labels": 3},
        },
        mode="classify",
        embedder="all-MiniLM-L6-v2|prefix=query: ",
        labeler="keywords",
        corpus_id=2,
        name="old",
        label_column="label",
    )
    request = stored_request(run)
    assert request.pipeline.n_clusters == 6 and request.options.mode == "classify"
    assert request.options.rules is False and request.embedding.model == "all-MiniLM-L6-v2"
    assert (request.corpus_id, request.label_column) == (2, "label")
