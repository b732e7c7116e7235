"""Team mode's limits, its start-up checks and the migration that keeps an existing database
working: each refusal happens before anything is stored and says what to do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import text

from clustering.pipeline import PipelineConfig
from clustering.types import Corpus
from corpusmap import workflow
from corpusmap.modes import ModeOptions
from corpusmap.request import build_request
from corpusmap.team import TeamSettings, TeamSetupError, is_loopback, scoped_store
from storage import NotFoundError, Store, migrate
from storage.engine import database_url, make_engine
from storage.errors import QuotaError

TEXTS = [f"my card payment number {i} was declined" for i in range(20)] + [
    f"please reset the PIN of card {i}" for i in range(20)
]


def corpus(texts: list[str], name: str = "tickets") -> Corpus:
    return Corpus(
        name=name, frame=pd.DataFrame({"text": texts}), text_column="text", texts=list(texts)
    )


def team_store(store: Store, **limits: Any) -> Store:
    store.create_workspace("W", **limits)
    store.add_user("dana")
    store.set_member("dana", "editor", workspace="W")
    return store.scoped(store.access_for("dana"))


def test_an_upload_past_the_storage_quota_is_refused_and_nothing_is_stored(store: Store) -> None:
    dana = team_store(store, storage_quota_mb=0.004)
    small = dana.add_corpus(corpus(TEXTS[:5], "small"))
    counts = store.table_counts()
    with pytest.raises(QuotaError, match="storage quota|MB quota") as refused:
        dana.add_corpus(corpus(TEXTS * 5, "big"))
    assert "delete a corpus or ask an admin" in str(refused.value)
    assert store.table_counts() == counts
    usage = dana.usage()
    assert 0 < usage.storage_mb < 0.004 and usage.storage_quota_mb == 0.004
    assert [c.id for c in dana.list_corpora()] == [small.id]


def test_a_run_past_the_daily_llm_budget_is_refused_before_it_starts(
    store: Store, openai_server: Any, embedder: Any
) -> None:
    dana = team_store(store, llm_calls_per_day=3)
    corpus_id = dana.add_corpus(corpus(TEXTS)).id
    for i in range(3):
        dana.add_llm_call(
            cache_key=f"{i:064d}", model="m", base_url="", request="{}", response="",
            prompt_tokens=0, completion_tokens=0, latency_s=0.0, status="ok",
        )  # fmt: skip
    assert dana.usage().llm_calls_left == 0
    dana.check_run_limits(0)  # a run without the LLM still may
    request = build_request(
        corpus_id=corpus_id,
        config=PipelineConfig(n_clusters=2, goal="what the customer wants"),
        options=ModeOptions(mode="classify", categories=("declined card", "PIN reset")),
        llm={"base_url": openai_server.base_url, "model": "m"},
    )
    runs = store.table_counts()["runs"]
    with pytest.raises(QuotaError, match=r"has 0 of its 3 calls left today"):
        workflow.execute(dana, request, api_key="k", embedder=embedder)
    assert store.table_counts()["runs"] == runs
    assert openai_server.chat_requests == []
    # Another workspace's calls do not count against this one.
    store.create_workspace("Other", llm_calls_per_day=3)
    store.add_user("omar")
    store.set_member("omar", "editor", workspace="Other")
    omar = store.scoped(store.access_for("omar"))
    assert omar.usage().llm_calls_left == 3


def test_an_existing_database_lands_in_the_default_workspace_of_the_first_admin(
    tmp_path: Path,
) -> None:
    url = str(tmp_path / "old.db")
    engine = make_engine(database_url(url))
    migrate.upgrade(engine, "0003")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO corpora (name, format, encoding, text_column, columns, n_rows, "
                "n_empty, n_duplicates, content_hash, warnings, created_at) VALUES ('old', "
                "'csv', 'utf-8', 'text', '[\"text\"]', 1, 0, 0, 'h', '[]', '2026-01-01')"
            )
        )
        corpus_id = connection.execute(text("SELECT max(id) FROM corpora")).scalar_one()
        connection.execute(
            text(
                "INSERT INTO documents (corpus_id, position, text, text_hash, meta) "
                "VALUES (:c, 0, 'an old ticket', 'h1', '{\"text\": \"an old ticket\"}')"
            ),
            {"c": corpus_id},
        )
    engine.dispose()
    store = Store.open(url)
    assert store.load_corpus(corpus_id).texts == ["an old ticket"]  # single-user: as before
    store.add_user("first")
    store.add_user("second")
    assert store.claim_default_workspace("first")
    assert not store.claim_default_workspace("second")  # only while it has no member
    first = store.scoped(store.access_for("first"))
    assert first.access.role == "admin" and first.access.workspace == "Default"
    assert first.load_corpus(corpus_id).texts == ["an old ticket"]
    store.create_workspace("Elsewhere")
    store.set_member("second", "admin", workspace="Elsewhere")
    second = store.scoped(store.access_for("second"))
    with pytest.raises(NotFoundError, match=f"no corpus #{corpus_id}"):
        second.load_corpus(corpus_id)
    store.close()


# --- start-up checks -----------------------------------------------------------------------


def test_single_user_mode_listens_on_loopback_unless_told_otherwise() -> None:
    plain = TeamSettings.load({}, {})
    plain.check_startup("127.0.0.1")
    plain.check_startup("localhost")
    for address in ("", None, "0.0.0.0", "192.168.1.20", "::"):
        with pytest.raises(TeamSetupError, match=r"single-user mode \(no sign-in\)"):
            plain.check_startup(address)
    TeamSettings.load({}, {"CORPUSMAP_ALLOW_REMOTE": "1"}).check_startup("0.0.0.0")
    assert is_loopback("::1") and not is_loopback("10.0.0.1")


def test_team_mode_needs_a_way_to_sign_in(tmp_path: Path) -> None:
    with pytest.raises(TeamSetupError, match="no way to sign in is configured"):
        TeamSettings.load({}, {"CORPUSMAP_TEAM": "1"}).check_startup("0.0.0.0")
    oidc = TeamSettings.load({"corpusmap": {"team": True, "sign_in": "oidc"}}, {})
    with pytest.raises(TeamSetupError, match=r"no complete \[auth\] table"):
        oidc.check_startup("0.0.0.0")
    auth = {
        "redirect_uri": "http://localhost:8501/oauth2callback",
        "cookie_secret": "s",
        "client_id": "c",
        "client_secret": "x",
        "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
    }
    inferred = TeamSettings.load({"corpusmap": {"team": True}, "auth": auth}, {})
    assert inferred.sign_in == "oidc"
    inferred.check_startup("0.0.0.0")
    store = Store.open(str(tmp_path / "t.db"))
    builtin = TeamSettings.load({}, {"CORPUSMAP_TEAM": "1", "CORPUSMAP_SIGN_IN": "builtin"})
    with pytest.raises(TeamSetupError, match="corpusmap users add NAME --admin"):
        builtin.check_startup("0.0.0.0", store)
    store.add_user("ana", password_hash="$argon2id$v=19$stand-in")
    builtin.check_startup("0.0.0.0", store)
    store.close()


def test_naming_a_user_is_refused_in_single_user_mode_and_required_in_team_mode(
    tmp_path: Path,
) -> None:
    store = Store.open(str(tmp_path / "t.db"))
    with pytest.raises(TeamSetupError, match="team mode is off"):
        scoped_store(store, TeamSettings.load({}, {}), "ana")
    assert scoped_store(store, TeamSettings.load({}, {}), None).access is None
    team = TeamSettings.load({}, {"CORPUSMAP_TEAM": "1", "CORPUSMAP_SIGN_IN": "builtin"})
    with pytest.raises(TeamSetupError, match="name the user to act as"):
        scoped_store(store, team, None)
    store.close()
