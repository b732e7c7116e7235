"""Team mode's isolation, generated over every store method and every service function that
takes a corpus or run id: called as a member of another workspace (an admin there, so only the
workspace stops them), each must answer "not found" exactly as for an id that does not exist,
and leave the other workspace's data as it was. A new function that reaches a corpus or run
some other way than the checked store fails here. Roles are checked the same way: a viewer
reads and exports, an editor cannot delete.

On SQLite and on the PostgreSQL server CI starts.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import corpusmap
from clustering.pipeline import PipelineConfig
from clustering.types import Corpus
from corpusmap import edits, workflow
from corpusmap.modes import ModeOptions
from corpusmap.request import build_request
from storage import NotFoundError, Store
from storage.errors import ForbiddenError
from tests.conftest import POSTGRES_URL_ENV, postgres_schema

TEXTS = [
    *(f"my card payment of {i} euros was declined at the shop" for i in range(12)),
    *(f"how do I reset the PIN of my card number {i}" for i in range(12)),
    *(f"the transfer {i} to my friend has not arrived yet" for i in range(12)),
]
SKIPPED_MODULES = {"corpusmap.distributed"}
"""Ray's module: it needs a Ray cluster and reaches the store through ``workflow``."""


class World:
    """Workspace A (alice admin, carol viewer, erin editor) holds a corpus and a completed,
    edited run; workspace B (bob admin) holds its own corpus."""

    def __init__(self, url: str, embedder: Any) -> None:
        self.url = url
        plain = Store.open(url)
        self.plain = plain
        plain.create_workspace("A")
        plain.create_workspace("B")
        for user in ("alice", "bob", "carol", "erin"):
            plain.add_user(user)
        plain.set_member("alice", "admin", workspace="A")
        plain.set_member("carol", "viewer", workspace="A")
        plain.set_member("erin", "editor", workspace="A")
        plain.set_member("bob", "admin", workspace="B")
        self.alice = plain.scoped(plain.access_for("alice"))
        self.bob = plain.scoped(plain.access_for("bob"))
        self.carol = plain.scoped(plain.access_for("carol"))
        self.erin = plain.scoped(plain.access_for("erin"))
        frame = pd.DataFrame({"text": TEXTS, "label": [t.split()[1] for t in TEXTS]})
        corpus = Corpus(name="alice's tickets", frame=frame, text_column="text", texts=TEXTS)
        self.corpus_id = self.alice.add_corpus(corpus).id
        request = build_request(
            corpus_id=self.corpus_id,
            config=PipelineConfig(n_clusters=3, random_state=0),
            label_column="label",
        )
        self.run_id = workflow.execute(self.alice, request, embedder=embedder)
        edits.rename_cluster(self.alice, self.run_id, 0, name="Declined payments")
        self.alice.add_llm_call(
            cache_key="k" * 64,
            model="m",
            base_url="",
            request="{}",
            response="alice's reply",
            prompt_tokens=1,
            completion_tokens=1,
            latency_s=0.1,
            status="ok",
            run_id=self.run_id,
        )
        bob_corpus = Corpus(name="bob's", frame=frame.head(5), text_column="text", texts=TEXTS[:5])
        self.bob_corpus_id = self.bob.add_corpus(bob_corpus).id

    def snapshot(self) -> tuple[Any, ...]:
        """Alice's data, as alice reads it."""
        a = self.alice
        return (
            a.get_corpus(self.corpus_id),
            a.load_corpus(self.corpus_id).texts,
            a.get_run(self.run_id),
            [(c.cluster_id, c.name, c.size) for c in a.load_clusters(self.run_id, level=None)],
            a.load_assignments(self.run_id).to_dict("list"),
            a.list_edits(self.run_id),
        )


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, embedder: Any
) -> Iterator[World]:
    import os

    if request.param == "sqlite":
        yield World(str(tmp_path_factory.mktemp("team") / "team.db"), embedder)
        return
    base_url = os.environ.get(POSTGRES_URL_ENV)
    if not base_url:
        if os.environ.get("CORPUSMAP_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"CORPUSMAP_REQUIRE_POSTGRES=1 but {POSTGRES_URL_ENV} is not set")
        pytest.skip(f"no PostgreSQL server: set {POSTGRES_URL_ENV} (.ci/run starts one)")
    with postgres_schema(base_url) as url:
        yield World(url, embedder)


# --- the generated part --------------------------------------------------------------------


def sample_arguments(world: World, tmp_path: Path) -> dict[str, Any]:
    """A value for each parameter name the id-taking functions use besides the ids; a new
    name fails the test below with the name to add here."""
    source = tmp_path / "new.csv"
    source.write_text("text\na new ticket about my card\n", encoding="utf-8")
    one = Corpus(
        name="new",
        frame=pd.DataFrame({"text": ["a new ticket"]}),
        text_column="text",
        texts=["a new ticket"],
    )
    return {
        "coords": np.zeros((1, 2)),
        "data": source.read_bytes(),
        "filename": "new.csv",
        "corpus": one,
        "source": source,
        "rows": [0],
        "settings": {"config": {}, "embedder": "m", "labeler": "keywords"},
        "options": ModeOptions(),
        "vectors": np.zeros((len(TEXTS), 4), dtype=np.float32),
        "asker": None,
        "leaf_labels": [],
        "cluster_id": 0,
        "cluster_ids": [0, 1],
        "clusters": [0, 1],
        "name": "x",
        "names": {0: "x"},
        "description": "x",
        "inclusion_criterion": "x",
        "stage": "embed",
        "timings": {},
        "warnings": [],
        "usage": {},
        "config": {},
        "metrics": {},
        "rules": {},
        "hierarchy": None,
        "report": None,
        "novelty": None,
        "per_cluster": {},
        "document_ids": [1],
        "error": "x",
        "kind": "merge",
        "payload": {},
        "sentence": "x",
        "before": {},
        "after": {},
        "summaries": [],
        "labels": [],
        "assignment": None,
        "level": 0,
        "fmt": "csv",
        "path": tmp_path / "out.csv",
        "column": "label",
        "columns": ["label"],
        "texts": ["a new ticket"],
        "frame": pd.DataFrame({"text": ["a new ticket"]}),
        "seed": 1,
        "embedder": world_embedder(),
        "labeler": "keywords",
        "mode": "cluster",
        "goal": "",
        "label_column": "",
        "cache_key": "k" * 64,
        "model": "m",
        "base_url": "",
        "request": "{}",
        "response": "",
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "latency_s": 0.0,
        "status": "ok",
        "n": 2,
        "k": 2,
        "n_parents": 2,
        "size": 2,
        "filters": {},
        "values": ["x"],
        "probability": 1.0,
        "llm_settings": None,
        "api_key": None,
        "context_column": None,
        "per_cluster_n": 2,
    }


_EMBEDDER: list[Any] = []


def world_embedder() -> Any:
    return _EMBEDDER[0] if _EMBEDDER else None


ID_PARAMETERS = ("corpus_id", "run_id")


def store_methods() -> list[tuple[str, str]]:
    """(method, id parameter) for every public store method that takes a corpus or run id,
    inherited ones included."""
    found = []
    for name in dir(Store):
        member = getattr(Store, name)
        if name.startswith("_") or not inspect.isfunction(member):
            continue
        parameters = inspect.signature(member).parameters
        found += [(name, p) for p in ID_PARAMETERS if p in parameters]
    return sorted(found)


def service_functions() -> list[str]:
    """Every public function of the corpusmap package that takes a store and an object id."""
    found = []
    for info in pkgutil.iter_modules(corpusmap.__path__, "corpusmap."):
        if info.name in SKIPPED_MODULES or info.name.startswith("corpusmap.cli"):
            continue
        module = importlib.import_module(info.name)
        for name, member in vars(module).items():
            if name.startswith("_") or not inspect.isfunction(member):
                continue
            if member.__module__ != info.name:
                continue
            parameters = inspect.signature(member).parameters
            if "store" in parameters and any(p in parameters for p in ID_PARAMETERS):
                found.append(f"{info.name}.{name}")
    return sorted(found)


def call_with(function: Callable[..., Any], fixed: dict[str, Any], samples: dict[str, Any]) -> Any:
    arguments: dict[str, Any] = {}
    for name, parameter in inspect.signature(function).parameters.items():
        if name == "self" or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if name in fixed:
            arguments[name] = fixed[name]
        elif parameter.default is inspect.Parameter.empty:
            if name not in samples:
                pytest.fail(f"{function.__qualname__}: add a sample value for {name!r}")
            arguments[name] = samples[name]
    return function(**arguments)


def expect_not_found(call: Callable[[], Any], what: str) -> None:
    with pytest.raises(NotFoundError) as caught:
        call()
    message = str(caught.value)
    assert message.startswith(("no run #", "no corpus #")), f"{what}: {message}"


@pytest.mark.parametrize(("method", "id_parameter"), store_methods())
def test_every_store_method_answers_not_found_to_another_workspace(
    world: World, method: str, id_parameter: str, tmp_path: Path, embedder: Any
) -> None:
    _EMBEDDER[:] = [embedder]
    function = getattr(world.bob, method)
    before = world.snapshot()
    fixed = {"run_id": world.run_id, "corpus_id": world.corpus_id}
    expect_not_found(lambda: call_with(function, fixed, sample_arguments(world, tmp_path)), method)
    assert world.snapshot() == before


@pytest.mark.parametrize("qualified", service_functions())
def test_every_service_function_answers_not_found_to_another_workspace(
    world: World, qualified: str, tmp_path: Path, embedder: Any
) -> None:
    _EMBEDDER[:] = [embedder]
    module, name = qualified.rsplit(".", 1)
    function = getattr(importlib.import_module(module), name)
    before = world.snapshot()
    fixed = {"store": world.bob, "run_id": world.run_id, "corpus_id": world.corpus_id}
    expect_not_found(
        lambda: call_with(function, fixed, sample_arguments(world, tmp_path)), qualified
    )
    assert world.snapshot() == before


def test_the_generated_lists_cover_the_api(world: World) -> None:
    """The generators find what they must (a rename that hides functions fails here)."""
    methods, functions = {m for m, _ in store_methods()}, service_functions()
    assert {"get_run", "delete_corpus", "load_assignments", "record_edit"} <= set(methods)
    assert {
        "corpusmap.edits.merge_clusters",
        "corpusmap.downloads.labeled_corpus_bytes",
        "corpusmap.service.labeled_frame",
    } <= set(functions)


# --- what a member of another workspace sees -----------------------------------------------


def test_lists_searches_and_caches_stay_in_their_workspace(world: World) -> None:
    bob, alice = world.bob, world.alice
    assert [c.id for c in bob.list_corpora()] == [world.bob_corpus_id]
    assert world.corpus_id not in [c.id for c in bob.list_corpora()]
    assert bob.list_runs() == []
    assert bob.find_corpus(alice.get_corpus(world.corpus_id).content_hash) is None
    assert bob.find_llm_call("k" * 64) is None
    assert alice.find_llm_call("k" * 64) is not None
    assert all(c.run_id != world.run_id for c in bob.list_llm_calls())
    assert bob.list_llm_calls() == []
    assert all(e.workspace_id == bob.workspace_id for e in bob.audit_events())
    assert {m.username for m in bob.members()} == {"bob"}


def test_the_same_file_uploaded_in_another_workspace_is_its_own_copy(world: World) -> None:
    """Upload reuse (same content → same corpus) never hands out another workspace's id."""
    alice_corpus = world.alice.load_corpus(world.corpus_id)
    copy = world.bob.add_corpus(alice_corpus)
    assert copy.id != world.corpus_id
    assert world.bob.add_corpus(alice_corpus).id == copy.id
    world.bob.delete_corpus(copy.id)
    assert world.alice.get_corpus(world.corpus_id).n_rows == len(TEXTS)


def test_another_workspace_is_not_named_as_a_target(world: World) -> None:
    with pytest.raises(NotFoundError, match="no workspace 'A'"):
        world.bob.set_member("bob", "admin", workspace="A")
    with pytest.raises(NotFoundError, match="no workspace 'A'"):
        world.bob.members(workspace="A")


# --- roles ---------------------------------------------------------------------------------


def test_a_viewer_reads_but_cannot_change_or_delete(world: World) -> None:
    carol = world.carol
    assert carol.get_run(world.run_id).status == "completed"
    assert len(carol.load_assignments(world.run_id)) == len(TEXTS)
    before = world.snapshot()
    for change in (
        lambda: edits.rename_cluster(carol, world.run_id, 0, name="mine now"),
        lambda: edits.merge_clusters(carol, world.run_id, [0, 1]),
        lambda: carol.rename_run(world.run_id, "mine"),
        lambda: carol.delete_run(world.run_id),
        lambda: carol.delete_corpus(world.corpus_id),
        lambda: carol.add_corpus(carol.load_corpus(world.corpus_id), reuse=False),
        lambda: carol.set_member("carol", "admin"),
        lambda: carol.audit_events(),
    ):
        with pytest.raises(ForbiddenError, match="carol is a viewer in workspace 'A'"):
            change()
    assert world.snapshot() == before


def test_an_editor_edits_but_cannot_delete_or_manage_members(world: World) -> None:
    erin = world.erin
    erin.rename_run(world.run_id, erin.get_run(world.run_id).name)
    with pytest.raises(ForbiddenError, match="cannot delete or manage members"):
        erin.delete_run(world.run_id)
    with pytest.raises(ForbiddenError, match="erin is a editor|erin is an editor|cannot delete"):
        erin.set_member("erin", "admin")


def test_the_audit_trail_names_who_did_what(world: World) -> None:
    events = world.alice.audit_events()
    seen = {(e.actor, e.action, e.object_kind) for e in events}
    assert ("alice", "upload", "corpus") in seen
    assert ("alice", "run", "run") in seen
    assert ("alice", "edit", "run") in seen
    assert all(e.workspace_id == world.alice.workspace_id for e in events)
    assert not any(e.actor == "bob" for e in events)
