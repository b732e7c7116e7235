"""Goal-conditioned embeddings end to end (issue 5, item 3): an instruction prefix and LLM
keyphrase expansion on 40 real AG News texts, with the real bundled embedder, real SQLite files
under tmp_path and the scripted OpenAI-compatible server (an oracle that answers keyphrases
from the gold labels, tests/support/goal_replies.py); requests are counted at the server."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from clustering import read_corpus
from clustering.cached_embedding import text_hash
from clustering.errors import ConfigError
from clustering.pipeline import PipelineConfig
from corpusmap import api, edits, modes, service, workflow
from corpusmap.cli import main
from corpusmap.errors import CorpusmapError
from corpusmap.plan import plan_for_corpus
from corpusmap.request import LLMSpec, RunRequest, stored_request
from corpusmap.structure import add_hierarchy
from corpusmap.views import keyphrase_text
from llm import LLMSettings
from llm.errors import KeyphraseError
from llm.goal_prompts import KEYPHRASE_PROMPT_VERSION, KEYPHRASE_TEXT_TOKENS
from llm.keyphrases import goal_hash
from llm.prompts import truncate_to_tokens
from storage import Store
from tests.conftest import read_jsonl_gz
from tests.support.goal_replies import GoalOracle
from tests.support.openai_server import Reply, ScriptedOpenAIServer

AG_CLASSES = ("World", "Sports", "Business", "Sci/Tech")
PER_CLASS = 10
GOAL = "the kind of event reported"
INSTRUCTION = "Represent the news article for grouping by {goal}: "


@pytest.fixture(scope="module")
def ag_rows(shared_data):
    """40 AG News items, 10 per class, interleaved."""
    rows = read_jsonl_gz("ag_news_test.jsonl.gz", 1000)
    by_class = {c: [r for r in rows if r["label"] == c][:PER_CLASS] for c in AG_CLASSES}
    return [by_class[c][i] for i in range(PER_CLASS) for c in AG_CLASSES]


@pytest.fixture(scope="module")
def ag_path(tmp_path_factory, ag_rows):
    path = tmp_path_factory.mktemp("goal_embed") / "ag40.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ag_rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def oracle_server(ag_rows):
    oracle = GoalOracle({r["text"]: r["label"] for r in ag_rows})
    with ScriptedOpenAIServer(default=oracle) as server:
        server.oracle = oracle
        yield server


@pytest.fixture
def no_llm_env(monkeypatch):
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "CORPUSMAP_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)


def settings_for(server, **values):
    return LLMSettings(base_url=server.base_url, model="scripted", max_retries=0, **values)


def run_stored(store, path, options, embedder, *, goal=GOAL, llm_settings=None, **kwargs):
    corpus_id = store.add_corpus(read_corpus(path)).id
    request = RunRequest(
        corpus_id=corpus_id,
        options=options,
        pipeline=PipelineConfig(goal=goal, n_clusters=4),
        label_column="label",
        llm=LLMSpec.of(llm_settings) if llm_settings is not None else LLMSpec(),
    )
    return workflow.execute(store, request, embedder=embedder, **kwargs)


def cosines(a, b):
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def stored_vectors(store, run, texts):
    """The run's vectors as cached: under its embedder's cache key (model id and precision)."""
    key = service.run_embedder(run).cache_key
    found = store.get_embeddings(key, [text_hash(t) for t in texts])
    return np.vstack([found[text_hash(t)] for t in texts])


# --- the instruction prefix ---------------------------------------------------------------------


def test_an_instruction_prefix_changes_the_vectors_is_stored_and_is_kept_on_rebuild(
    sqlite_store, ag_path, ag_rows, embedder, no_llm_env
):
    store = sqlite_store
    texts = [r["text"] for r in ag_rows]
    options = modes.ModeOptions(instruction=INSTRUCTION)
    run_id = run_stored(store, ag_path, options, embedder)
    run = store.get_run(run_id)
    prefix = INSTRUCTION.format(goal=GOAL)
    assert run.status == "completed" and run.embedder == f"all-MiniLM-L6-v2|prefix={prefix}"
    assert stored_request(run).options.instruction == INSTRUCTION
    assert run.timings["embed_embedded"] == len(texts)
    prefixed = stored_vectors(store, run, texts)
    plain = embedder.embed(texts)
    assert (cosines(prefixed, plain) < 0.995).all()  # the prefix moved every vector
    assert store.count_embeddings(embedder.cache_key) == 0  # nothing was embedded without it

    # The same run again embeds nothing: every vector comes from the cache under the prefix.
    again = store.get_run(run_stored(store, ag_path, options, embedder))
    assert again.timings["embed_embedded"] == 0 and again.timings["embed_cache_hits"] == len(texts)

    # Rebuilt from the stored id, the embedder keeps the prefix (relabel, edits, hierarchy).
    rebuilt = service.run_embedder(run)
    assert rebuilt.model_id == run.embedder and rebuilt.prefix == prefix
    assert (cosines(rebuilt.embed(texts[:4]), prefixed[:4]) > 0.999).all()
    service.relabel(store, run_id)
    add_hierarchy(store, run_id, llm_budget=0)
    assert store.get_run(run_id).hierarchy["n_parents"] >= 1
    edits.split_cluster(store, run_id, 0)
    assert store.count_embeddings(embedder.cache_key) == 0
    assert store.count_embeddings(rebuilt.cache_key) == len(texts)


def test_instruction_errors_come_before_anything_is_stored(sqlite_store, ag_path, tmp_path):
    with pytest.raises(ConfigError, match="no goal"):
        api.run(
            ag_path,
            options=modes.ModeOptions(instruction="Instruct: {goal}\nQuery: "),
            store=sqlite_store,
            config=PipelineConfig(n_clusters=4),
        )
    assert sqlite_store.list_corpora() == []
    args = ["run", str(ag_path), "--out", str(tmp_path / "o.csv"), "--db", str(tmp_path / "c.db")]
    result = CliRunner().invoke(main, [*args, "--instruction", "Instruct: {topic}\\nQuery: "])
    assert result.exit_code == 2 and "{topic}, but only {goal}" in result.output


# --- keyphrase expansion ------------------------------------------------------------------------


def test_keyphrase_expansion_asks_once_per_batch_and_a_second_run_asks_nothing(
    sqlite_store, ag_path, ag_rows, embedder, oracle_server, no_llm_env
):
    store, server = sqlite_store, oracle_server
    texts = [r["text"] for r in ag_rows]
    options = modes.ModeOptions(expand_keyphrases=True, llm_budget=5)
    plans = []
    run_id = run_stored(
        store, ag_path, options, embedder, llm_settings=settings_for(server), on_plan=plans.append
    )
    run = store.get_run(run_id)
    requests = server.chat_requests
    assert len(requests) == 3 == plans[0]["keyphrase_calls"] == plans[0]["calls"]
    assert server.oracle.kinds == ["keyphrases"] * 3
    # The goal is in the task; corpus texts only inside <data>, as escaped JSON.
    sent = []
    for request in requests:
        task, data = request.message("user").split("<data>\n", 1)
        assert f'"{GOAL}"' in task
        batch = [t["text"] for t in json.loads(data.removesuffix("\n</data>"))["texts"]]
        for text in batch:
            assert text[:40] not in task and text[:40] not in request.message("system")
        sent += batch
    assert sorted(sent) == sorted(truncate_to_tokens(t, KEYPHRASE_TEXT_TOKENS) for t in texts)
    assert run.embedder == (
        f"all-MiniLM-L6-v2|keyphrases={KEYPHRASE_PROMPT_VERSION}:scripted:{goal_hash(GOAL)}"
    )
    usage = run.llm_usage
    assert usage["keyphrases"]["expanded"] == len(texts) and usage["keyphrases"]["kept"] == 0
    assert usage["calls"] == 3 and usage["plan"]["keyphrase_calls"] == 3
    assert usage["budget"] == {"max_calls": 5, "used": 3}
    assert len(store.list_llm_calls(run_id)) == 3
    expanded = stored_vectors(store, run, texts)
    assert (cosines(expanded, embedder.embed(texts)) < 0.99).all()
    assert run.metrics["nmi"] > 0.9  # the oracle's keyphrases name the gold class

    # The same run again: every vector from the cache, no request at all.
    plans.clear()
    again = store.get_run(
        run_stored(
            store,
            ag_path,
            options,
            embedder,
            llm_settings=settings_for(server),
            on_plan=plans.append,
        )
    )
    assert len(server.chat_requests) == 3 and plans[0]["keyphrase_calls"] == 0
    assert again.timings["embed_embedded"] == 0 and again.llm_usage["keyphrases"]["texts"] == 0
    assert "embedding cache" in keyphrase_text(again.llm_usage)
    plan = plan_for_corpus(
        store,
        RunRequest(corpus_id=again.corpus_id, options=options, pipeline=PipelineConfig(goal=GOAL)),
        llm_settings=settings_for(server),
    )
    assert plan["keyphrase_calls"] == 0

    # Rebuilt with no LLM configured, the run's embedder reads the cache: relabel, hierarchy
    # and split ask nothing; a text missing from the cache is a clear error.
    rebuilt = service.run_embedder(run)
    assert rebuilt.model_id == run.embedder and rebuilt.asker is None
    service.relabel(store, run_id)
    add_hierarchy(store, run_id, llm_budget=0)
    edits.split_cluster(store, run_id, 0)
    assert len(server.chat_requests) == 3
    unseen = texts[0] + " Updated."
    with pytest.raises(KeyphraseError, match="OPENAI_BASE_URL"):
        service.run_vectors(store, run, [unseen])
    # With an endpoint, the missing text is expanded (one call), and stays in the cache.
    vector = service.run_vectors(store, run, [unseen], llm_settings=settings_for(server))
    assert vector.shape == (1, expanded.shape[1]) and len(server.chat_requests) == 4
    assert store.get_embeddings(service.run_embedder(run).cache_key, [text_hash(unseen)])


def test_a_budget_that_cannot_expand_every_text_fails_before_any_request(
    sqlite_store, ag_path, embedder, oracle_server
):
    options = modes.ModeOptions(mode="classify", expand_keyphrases=True, llm_budget=2)
    with pytest.raises(CorpusmapError, match="at least 3"):
        run_stored(
            sqlite_store, ag_path, options, embedder, llm_settings=settings_for(oracle_server)
        )
    assert oracle_server.requests == [] and sqlite_store.list_runs() == []


def test_expansion_without_an_endpoint_is_an_error_not_a_no_op(
    sqlite_store, ag_path, embedder, no_llm_env
):
    with pytest.raises(CorpusmapError, match="no LLM endpoint"):
        api.run(
            ag_path,
            options=modes.ModeOptions(expand_keyphrases=True),
            store=sqlite_store,
            config=PipelineConfig(goal=GOAL),
        )
    assert sqlite_store.list_corpora() == []


def test_malformed_keyphrase_replies_fall_back_text_by_text(
    sqlite_store, ag_path, ag_rows, embedder
):
    texts = [r["text"] for r in ag_rows]
    oracle = GoalOracle({r["text"]: r["label"] for r in ag_rows})

    def odd_ids_only(body):
        reply = json.loads(oracle(body).content)
        reply["items"] = [item for item in reply["items"] if item["id"] % 2 == 1]
        return Reply.text(json.dumps(reply))

    with ScriptedOpenAIServer(default=odd_ids_only) as server:
        # The first batch's reply and its repair are unusable: its 16 texts keep their vectors.
        server.script(Reply.text("Sure! Keyphrases: sport, news."), Reply.text('{"items": []}'))
        run_id = run_stored(
            sqlite_store,
            ag_path,
            modes.ModeOptions(expand_keyphrases=True),
            embedder,
            llm_settings=settings_for(server, max_in_flight=1),
        )
        assert len(server.chat_requests) == 4  # 3 batches + 1 repair
    run = sqlite_store.get_run(run_id)
    assert run.status == "completed"
    stats = run.llm_usage["keyphrases"]
    # Batches of 16, 16 and 8 texts: the first kept whole, then only odd ids expanded.
    assert stats["expanded"] == 8 + 4 and stats["kept"] == 16 + 8 + 4
    assert stats["repairs"] == 1 and stats["unanswered"] == 1
    assert "28 kept as they were" in keyphrase_text(run.llm_usage)
    similarity = cosines(stored_vectors(sqlite_store, run, texts), embedder.embed(texts))
    kept = np.r_[np.arange(16), np.arange(17, 40, 2)]
    assert (similarity[kept] > 0.995).all()  # kept as they were
    assert (np.delete(similarity, kept) < 0.99).all()


def test_cli_instruction_and_keyphrase_flags_end_to_end(
    ag_path, ag_rows, tmp_path, embedder, oracle_server, no_llm_env
):
    db = tmp_path / "cli.db"
    base = ["run", str(ag_path), "--db", str(db), "--goal", GOAL, "--n-clusters", "4"]
    llm = ["--llm-base-url", oracle_server.base_url, "--llm-model", "scripted"]
    runner = CliRunner()

    refused = runner.invoke(
        main,
        [*base, "--out", str(tmp_path / "x.csv"), "--expand-keyphrases", "--llm-budget", "2", *llm],
    )
    assert refused.exit_code == 2 and "at least 3" in refused.output
    assert oracle_server.requests == []

    flags = ["--expand-keyphrases", "--llm-budget", "4", "--instruction", "Query about {goal}:\\n"]
    first = runner.invoke(main, [*base, "--out", str(tmp_path / "a.csv"), *flags, *llm, "--json"])
    assert first.exit_code == 0, first.output
    assert "LLM budget: up to 3 calls" in first.stderr and "keyphrase 3" in first.stderr
    assert f"keyphrases: {len(ag_rows)} texts expanded, 0 kept as they were" in first.stderr
    assert len(oracle_server.chat_requests) == 3
    run = Store.open(str(db)).get_run(json.loads(first.stdout)["run_id"])
    assert run.embedder.startswith(f"all-MiniLM-L6-v2|prefix=Query about {GOAL}:\n|keyphrases=")
    assert stored_request(run).options.expand_keyphrases is True

    second = runner.invoke(main, [*base, "--out", str(tmp_path / "b.csv"), *flags, *llm])
    assert second.exit_code == 0, second.output
    assert "every expanded vector came from the embedding cache" in second.stderr
    assert "embedded 0 texts" in second.stdout
    assert len(oracle_server.chat_requests) == 3
