"""End to end with a real local model: llama.cpp's server with SmolLM2-135M-Instruct labels the
clusters of a small real corpus through the ``openai`` client. A 135M model's wording is not
tested (it is demo quality), only the structure and statuses of what comes back and what is
stored. Run by ``make test`` after ``make local-llm``; skipped where llama-cpp-python is missing.
"""

from __future__ import annotations

import pytest

from clustering import PipelineConfig, run_pipeline
from clustering.labels import keyword_label
from llm import FAILED_STATUS, LLMLabeler, LLMSettings, LocalModelError, serve_local_model
from llm.cache import CALL_STATUSES
from llm.prompts import NAME_MAX_WORDS
from tests.support.local_llm import LOCAL_LLM_MARKS
from tests.support.openai_server import free_port

pytestmark = LOCAL_LLM_MARKS

N_INTENTS = 10
PER_INTENT = 30
N_CLUSTERS = 5
"""k-means with a fixed K keeps the number of LLM calls (and the test's time) predictable."""


@pytest.fixture(scope="module")
def banking_300(banking_rows):
    """300 real queries: 30 of each of 10 intents."""
    intents = sorted({r["label"] for r in banking_rows})[:N_INTENTS]
    texts = []
    for intent in intents:
        texts += [r["text"] for r in banking_rows if r["label"] == intent][:PER_INTENT]
    return texts


def test_the_local_model_labels_every_cluster_of_a_real_corpus(
    local_server, banking_300, embedder, sqlite_store
):
    store = sqlite_store
    settings = LLMSettings(
        base_url=local_server.base_url,
        model=local_server.model,
        timeout_s=60,
        max_in_flight=2,
        max_retries=1,
        max_tokens=256,
    )
    labeler = LLMLabeler(settings, store=store)
    result = run_pipeline(
        banking_300, embedder, PipelineConfig(n_clusters=N_CLUSTERS), labeler=labeler
    )

    assert result.assignment.n_clusters == N_CLUSTERS
    assert [lab.cluster_id for lab in result.labels] == [s.cluster_id for s in result.summaries]
    for summary, label in zip(result.summaries, result.labels, strict=True):
        assert label.status in ("ok", FAILED_STATUS)
        if label.status == "ok":
            assert label.labeler == "llm"
            assert 1 <= len(label.name.split()) <= NAME_MAX_WORDS
            assert label.description and label.inclusion_criterion
            assert all(0 <= i < len(summary.representatives) for i in label.evidence)
        else:
            assert label.error
            assert label.name == keyword_label(summary).name

    usage = labeler.usage
    assert usage.clusters == len(result.labels)
    assert usage.calls >= len(result.labels) and usage.cache_hits == 0
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.cost_usd == 0.0 and usage.priced
    assert len(usage.failed_clusters) == sum(lab.status == FAILED_STATUS for lab in result.labels)

    calls = store.list_llm_calls()
    assert len(calls) == usage.calls
    assert {c.status for c in calls} <= set(CALL_STATUSES)
    # The model answered (whatever it said): the real path works end to end, in llama.cpp's
    # own structured-output dialect after its 500 to "json_schema".
    assert any(c.status != "error" for c in calls)
    assert any('"type": "json_object"' in c.request for c in calls if c.status != "error")
    assert usage.schema_fallbacks >= 1
    assert all(c.model == "smollm2" and c.latency_s > 0 for c in calls if c.status != "error")

    # Relabelling the same clusters asks again only where no valid answer is stored.
    again = LLMLabeler(settings, store=store)
    relabels = again.label(result.summaries)
    assert again.usage.cache_hits == sum(lab.status == "ok" for lab in result.labels)
    for before, after in zip(result.labels, relabels, strict=True):
        if before.status == "ok":
            assert after == before


def test_a_model_file_that_is_not_a_model_is_a_clear_error(tmp_path):
    fake = tmp_path / "not-a-model.gguf"
    fake.write_bytes(b"this is not a GGUF file")
    with pytest.raises(LocalModelError, match="exited"):
        serve_local_model(port=free_port(), model_path=fake, log_path=tmp_path / "log.txt")
