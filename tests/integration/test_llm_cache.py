"""The LLM call cache on the real store: SQLite on a file under tmp_path."""

from __future__ import annotations

from llm import LLMLabeler, LLMSettings
from tests.support.openai_server import Reply
from tests.support.summaries import three_summaries

SENTINEL = "sk-test-SENTINEL-cache-42"


def settings_for(base_url: str) -> LLMSettings:
    # One request at a time, so scripted replies go to clusters in order.
    return LLMSettings(
        base_url=base_url,
        api_key=SENTINEL,
        model="gpt-4o-mini",
        timeout_s=0.5,
        max_retries=1,
        max_in_flight=1,
    )


def test_a_second_identical_labeling_makes_no_request(openai_server, store):
    first = LLMLabeler(settings_for(openai_server.base_url), store=store)
    labels = first.label(three_summaries(goal="why customers call"))
    assert len(openai_server.chat_requests) == 3
    assert first.usage.calls == 3

    second = LLMLabeler(settings_for(openai_server.base_url), store=store)
    again = second.label(three_summaries(goal="why customers call"))
    assert len(openai_server.chat_requests) == 3
    assert again == labels
    assert (second.usage.calls, second.usage.cache_hits) == (0, 3)
    assert second.usage.prompt_tokens == 0 and second.usage.cost_usd == 0.0

    calls = store.list_llm_calls()
    assert len(calls) == 3
    assert {c.status for c in calls} == {"ok"}
    assert all(c.model == "gpt-4o-mini" and c.base_url == openai_server.base_url for c in calls)
    assert all(c.prompt_tokens == 100 and c.completion_tokens == 20 for c in calls)
    assert len({c.cache_key for c in calls}) == 3


def test_every_call_is_stored_without_the_key(openai_server, store):
    openai_server.script(Reply.text("nope"), Reply.empty(), Reply.refused("no"))
    labeler = LLMLabeler(settings_for(openai_server.base_url), store=store)
    labels = labeler.label(three_summaries())
    calls = store.list_llm_calls()
    # Cluster 0: invalid, then an empty repair; cluster 1: refused; cluster 2: ok.
    assert [c.status for c in calls] == ["invalid", "empty", "refused", "ok"]
    assert [lab.status for lab in labels] == ["llm_failed", "llm_failed", "ok"]
    assert calls[0].response == "nope" and calls[2].response == "no"
    assert "refused" in calls[2].error
    for call in calls:
        row = " ".join(str(v) for v in call.__dict__.values())
        assert SENTINEL not in row
        assert "authorization" not in row.lower()
    # Only successful calls answer a repeat: the two failed clusters are asked again.
    LLMLabeler(settings_for(openai_server.base_url), store=store).label(three_summaries())
    assert len(openai_server.chat_requests) == 4 + 2
