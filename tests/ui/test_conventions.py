"""The app's shape (STYLE.md): pages import only streamlit, corpusmap and ui; no class or
cache decorator in a page; no ``unsafe_allow_html`` anywhere; every page has an AppTest."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.ui.conftest import REPO

PAGES = sorted((REPO / "pages").glob("*.py"))
APP_FILES = [REPO / "app.py", *PAGES, *sorted((REPO / "ui").glob("*.py"))]


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_pages_only_talk_to_corpusmap_and_ui() -> None:
    for page in PAGES:
        extra = imported_roots(page) - {"streamlit", "corpusmap", "ui", "pandas"}
        assert not extra, f"{page.name} imports {extra}: go through corpusmap or ui"


def test_every_page_first_makes_sure_it_runs_in_the_frame() -> None:
    for page in PAGES:
        body = [
            n
            for n in ast.parse(page.read_text()).body
            if not isinstance(n, ast.Import | ast.ImportFrom)
        ]
        first = (
            body[1]
            if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
            else body[0]
        )
        assert ast.unparse(first) == "frame.require(__file__)", (
            f"{page.name} starts with {ast.unparse(first)!r}"
        )


def test_no_classes_or_caches_in_pages() -> None:
    for page in PAGES:
        tree = ast.parse(page.read_text())
        assert not [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)], page.name
        assert "st.cache_" not in page.read_text(), page.name


def test_no_unsafe_html_anywhere_in_the_app() -> None:
    for path in APP_FILES:
        text = path.read_text()
        assert "unsafe_allow_html" not in text, path
        assert "st.html(" not in text, path


def test_business_packages_do_not_import_streamlit() -> None:
    for package in ("corpusmap", "clustering", "storage", "llm"):
        for path in (REPO / package).rglob("*.py"):
            assert "streamlit" not in imported_roots(path), path


def test_every_page_has_an_app_test() -> None:
    tests = "\n".join(p.read_text() for p in (REPO / "tests" / "ui").glob("test_*.py"))
    for page in PAGES:
        assert f'"{page.stem}"' in tests or f"pages/{page.name}" in tests, page.name
