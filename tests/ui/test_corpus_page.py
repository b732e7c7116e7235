"""The Corpus page: every upload format, what was detected, the text column, errors, deletion."""

from __future__ import annotations

import gzip

import pytest

from tests.ui.conftest import assert_clean, click, corpus_bytes, metric, open_app, upload, widget

FORMATS = ["csv", "tsv", "jsonl", "json", "txt", "parquet", "xlsx"]


@pytest.fixture(scope="module")
def rows(small_rows: list[dict]) -> list[dict]:
    return small_rows[:40]


@pytest.mark.parametrize("fmt", [*FORMATS, "csv.gz", "jsonl.gz"])
def test_every_format_uploads_previews_and_stores(app_db, rows, fmt: str) -> None:
    base = fmt.removesuffix(".gz")
    data = corpus_bytes(rows, base)
    if fmt.endswith(".gz"):
        data = gzip.compress(data)
    at = upload(open_app("corpus"), f"queries.{fmt}", data)
    assert metric(at, "Rows") == "40"
    assert metric(at, "Format") == base
    assert metric(at, "Encoding") == ("binary" if base in ("parquet", "xlsx") else "utf-8")
    preview = at.dataframe[0].value
    assert preview["text (cleaned)"].iloc[0] == rows[0]["text"]
    click(at, "Store and use this corpus")
    assert "is stored and selected" in at.success[0].value
    stored = at.dataframe[-1].value
    assert stored["texts"].tolist() == [40]
    assert stored["name"].tolist() == [f"queries.{fmt}"]


def test_detected_encoding_empty_rows_and_duplicates(app_db) -> None:
    text = "text,label\nCafé au lait,a\n,b\nCafé au lait,a\nthé vert,c\n"
    at = upload(open_app("corpus"), "latin.csv", text.encode("cp1252"))
    assert metric(at, "Encoding") in ("cp1252", "latin-1", "iso-8859-1", "windows-1252")
    assert metric(at, "Empty rows") == "1"
    assert metric(at, "Duplicate texts") == "1"
    assert metric(at, "Texts to cluster") == "3"


def test_text_column_can_be_changed(app_db) -> None:
    data = b"body,title\nthe long body of the first message here,first\nanother long body text,second\n"
    at = upload(open_app("corpus"), "two.csv", data)
    column = widget(at.selectbox, "Text column")
    assert column.value == "body"
    column.set_value("title")
    at.run()
    assert_clean(at)
    assert at.dataframe[0].value["text (cleaned)"].tolist() == ["first", "second"]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("header.csv", b"text,label\n", "no data rows"),
        ("empty.csv", b"", "empty"),
        ("bad.parquet", b"this is not parquet at all", "parquet"),
        ("blank.csv", b'text,n\n" ",1\n"  ",2\n', "no column holds text"),
    ],
)
def test_bad_files_show_an_error_not_a_traceback(
    app_db, name: str, data: bytes, message: str
) -> None:
    at = upload(open_app("corpus"), name, data)
    assert at.error, "expected an error message"
    assert message in at.error[0].value.lower()
    assert not any(b.label == "Store and use this corpus" for b in at.button)


def test_upload_limit_is_stated(app_db) -> None:
    at = open_app("corpus")
    assert any("1,024 MB" in c.value for c in at.caption)


def test_delete_asks_for_confirmation(app_db, rows) -> None:
    at = click(
        upload(open_app("corpus"), "q.jsonl", corpus_bytes(rows, "jsonl")),
        "Store and use this corpus",
    )
    click(at, "Delete…")
    assert "cannot be undone" in at.warning[0].value
    click(at, "Cancel")
    assert at.dataframe[-1].value["id"].tolist() == [1]
    click(at, "Delete…")
    click(at, "Yes, delete")
    assert "deleted" in at.success[0].value
    assert not any(d.value.shape[0] and "id" in d.value.columns for d in at.dataframe)
