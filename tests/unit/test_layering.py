"""Dependencies point one way: clustering ← llm, storage ← corpusmap ← ui, pages, app.py.

Each package may import only the third-party libraries that are its to own: openai lives in
llm/, sqlalchemy and alembic in storage/, streamlit in ui/, pages/ and app.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OWN = {"clustering", "llm", "storage", "corpusmap", "ui", "pages"}
ALLOWED_INTERNAL = {
    "clustering": {"clustering"},
    "llm": {"clustering", "llm"},
    "storage": {"clustering", "storage"},
    "corpusmap": {"clustering", "llm", "storage", "corpusmap"},
    "ui": {"clustering", "llm", "storage", "corpusmap", "ui"},
    "pages": {"clustering", "llm", "storage", "corpusmap", "ui"},
}
OWNED_LIBRARIES = {
    "openai": {"llm"},
    "sqlalchemy": {"storage"},
    "alembic": {"storage"},
    "streamlit": {"ui", "pages", "app.py"},
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def package_files() -> list[tuple[str, Path]]:
    files = [(pkg, p) for pkg in ALLOWED_INTERNAL for p in sorted((REPO / pkg).rglob("*.py"))]
    return files + [("app.py", REPO / "app.py")]


@pytest.mark.parametrize(
    ("package", "path"), package_files(), ids=lambda v: str(v).replace(str(REPO), "")
)
def test_imports_respect_the_layers(package, path):
    roots = imported_roots(path)
    allowed = ALLOWED_INTERNAL.get(package, OWN)
    wrong = sorted((roots & OWN) - allowed)
    assert not wrong, (
        f"{path.relative_to(REPO)} imports {wrong}: {package} may import only {sorted(allowed)}"
    )
    for library, owners in OWNED_LIBRARIES.items():
        if library in roots:
            assert package in owners, (
                f"{path.relative_to(REPO)} imports {library}, which belongs to {sorted(owners)}"
            )


# --- issue 12: one road for runs, pages through the services, modules a newcomer can read ------

STORE_WRITES = ("add_", "save_", "delete_", "create_", "update_", "rename_", "record_", "claim_")
"""Store methods that change stored data: only corpusmap/ (the services) calls them."""
MAX_LINES = 500
LONG_MODULES: dict[str, str] = {}
"""Modules allowed past ``MAX_LINES``, each with the reason (none today)."""


def store_write_calls(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    calls = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "store"
            and node.func.attr.startswith(STORE_WRITES)
        ):
            calls.append(f"{path.relative_to(REPO)}:{node.lineno} store.{node.func.attr}")
    return calls


def test_pages_and_ui_change_stored_data_only_through_the_services():
    files = [
        *sorted((REPO / "pages").glob("*.py")),
        *sorted((REPO / "ui").glob("*.py")),
        REPO / "app.py",
    ]
    calls = [c for path in files for c in store_write_calls(path)]
    assert not calls, f"call a corpusmap service instead: {calls}"


RUN_CREATORS = {
    "corpusmap/workflow.py": "every run that clusters",
    "corpusmap/assign.py": "a run saved from new texts placed into a stored run (no stage runs)",
}


def test_runs_are_created_by_the_one_workflow_only():
    creators = [
        str(path.relative_to(REPO))
        for pkg in ("corpusmap", "ui", "pages")
        for path in sorted((REPO / pkg).rglob("*.py"))
        if "create_run(" in path.read_text(encoding="utf-8")
    ]
    assert set(creators) <= set(RUN_CREATORS), creators


@pytest.mark.parametrize(
    ("package", "path"), package_files(), ids=lambda v: str(v).replace(str(REPO), "")
)
def test_no_module_is_too_long_to_read(package, path):
    relative = str(path.relative_to(REPO))
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES or relative in LONG_MODULES, (
        f"{relative} has {lines} lines: split it by what changes together (at most {MAX_LINES})"
    )
