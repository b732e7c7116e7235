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
OWNED_LIBRARIES = {"openai": {"llm"}, "sqlalchemy": {"storage"}, "alembic": {"storage"}, "streamlit": {"ui", "pages", "app.py"}}


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


@pytest.mark.parametrize(("package", "path"), package_files(), ids=lambda v: str(v).replace(str(REPO), ""))
def test_imports_respect_the_layers(package, path):
    roots = imported_roots(path)
    allowed = ALLOWED_INTERNAL.get(package, OWN)
    wrong = sorted((roots & OWN) - allowed)
    assert not wrong, f"{path.relative_to(REPO)} imports {wrong}: {package} may import only {sorted(allowed)}"
    for library, owners in OWNED_LIBRARIES.items():
        if library in roots:
            assert package in owners, f"{path.relative_to(REPO)} imports {library}, which belongs to {sorted(owners)}"
