"""Reading corpora: every format, encodings, column detection, empty and bad files."""

from __future__ import annotations

import gzip
import io
import json

import pandas as pd
import pytest

from clustering.encoding import decode_bytes
from clustering.errors import ColumnError, EmptyCorpusError, IngestError
from clustering.ingest import (
    choose_text_column,
    detect_format,
    read_corpus,
    read_corpus_bytes,
)

ROWS = [
    {"id": 1, "text": "My card was declined at the shop", "label": "card"},
    {"id": 2, "text": "How do I reset my PIN?", "label": "pin"},
    {"id": 3, "text": "", "label": "empty"},
    {"id": 4, "text": "How do I reset my PIN?", "label": "pin"},
]


def frame() -> pd.DataFrame:
    return pd.DataFrame(ROWS)


def as_bytes(fmt: str) -> bytes:
    f = frame()
    if fmt == "csv":
        return f.to_csv(index=False).encode()
    if fmt == "tsv":
        return f.to_csv(index=False, sep="\t").encode()
    if fmt == "jsonl":
        return f.to_json(orient="records", lines=True).encode()
    if fmt == "json":
        return f.to_json(orient="records").encode()
    buffer = io.BytesIO()
    if fmt == "parquet":
        f.to_parquet(buffer)
    else:
        f.to_excel(buffer, index=False)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "json", "parquet", "xlsx"])
def test_every_format_keeps_rows_columns_and_marks_empty_texts(fmt):
    corpus = read_corpus_bytes(as_bytes(fmt), f"data.{fmt}")
    assert corpus.text_column == "text"
    assert corpus.n_rows == 4
    assert corpus.texts[2] == ""
    assert corpus.n_empty == 1
    assert corpus.n_duplicates == 1
    assert list(corpus.nonempty_index) == [0, 1, 3]
    assert set(corpus.metadata_columns) == {"id", "label"}
    assert corpus.frame["label"].tolist() == ["card", "pin", "empty", "pin"]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_gzip_of_text_formats(fmt):
    corpus = read_corpus_bytes(gzip.compress(as_bytes(fmt)), f"data.{fmt}.gz")
    assert corpus.n_rows == 4 and corpus.format == fmt


def test_txt_is_one_text_per_line():
    corpus = read_corpus_bytes(b"first line\nsecond line\n\nfourth\n", "notes.txt")
    assert corpus.texts == ["first line", "second line", "", "fourth"]


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("utf-16", "utf-16"), ("cp1252", "cp1252")],
)
def test_encodings_are_detected(encoding, expected):
    data = "text\nCafé crème à emporter\nNaïve façade\n".encode(encoding)
    corpus = read_corpus_bytes(data, "x.csv")
    assert corpus.encoding == expected
    assert corpus.texts == ["Café crème à emporter", "Naïve façade"]
    assert corpus.text_column == "text"


def test_utf16_without_bom():
    text, encoding = decode_bytes("text\nhello there\n".encode("utf-16-le"))
    assert encoding == "utf-16-le" and text.startswith("text")


def test_text_column_detected_by_length_when_no_usual_name():
    f = pd.DataFrame(
        {"code": ["A1", "B2"], "remarks": ["a long free-text remark", "another long one here"]}
    )
    assert choose_text_column(f) == "remarks"


def test_text_column_override_and_errors():
    data = as_bytes("csv")
    assert read_corpus_bytes(data, "x.csv", text_column="label").text_column == "label"
    with pytest.raises(ColumnError, match="no column 'body'.*id, text, label"):
        read_corpus_bytes(data, "x.csv", text_column="body")
    with pytest.raises(ColumnError, match="numbers"):
        read_corpus_bytes(data, "x.csv", text_column="id")


def test_control_characters_and_nul_are_removed():
    corpus = read_corpus_bytes(json.dumps({"text": "a\x00b\x07c\td"}).encode(), "x.jsonl")
    assert corpus.texts == ["a b c\td"]


@pytest.mark.parametrize(
    ("data", "name", "error", "pattern"),
    [
        (b"", "x.csv", EmptyCorpusError, "empty"),
        (b"text,label\n", "x.csv", EmptyCorpusError, "no data rows"),
        (b"text\n \n\n", "x.csv", EmptyCorpusError, "empty|no data rows"),
        (b'{"text": "ok"}\n{"text": oops}\n', "x.jsonl", IngestError, "line 2"),
        (b'{"a": 1}', "x.json", IngestError, "array of objects"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00" * 50, "x.csv", IngestError, "binary"),
        (gzip.compress(b"text\nhello\n" * 1000)[:60], "x.csv.gz", IngestError, "truncated"),
        (b"text\nhello\n", "x.doc", IngestError, "format"),
    ],
)
def test_bad_files_raise_clear_errors(data, name, error, pattern):
    with pytest.raises(error, match=pattern):
        read_corpus_bytes(data, name)


def test_missing_file(tmp_path):
    with pytest.raises(IngestError, match="no such file"):
        read_corpus(tmp_path / "nope.csv")


def test_size_limit_is_configurable(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("text\n" + "some text\n" * 1000)
    with pytest.raises(IngestError, match="over the limit"):
        read_corpus(path, max_bytes=1000)
    assert read_corpus(path, max_bytes=1_000_000).n_rows == 1000


def test_detect_format():
    assert detect_format("a/b/data.JSONL.gz") == "jsonl"
    assert detect_format("x.xlsx") == "xlsx"


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "txt"])
def test_a_byte_past_the_head_that_is_not_utf8_rereads_the_file_as_cp1252(tmp_path, fmt):
    """Files are read as a stream and their encoding guessed from the first 64 KB: a cp1252
    byte far into the file must not fail the read nor garble the texts before it."""
    lines = [f"text number {i} about a refund" for i in range(6000)]  # ~200 KB of ASCII
    lines.append("caf\xe9 au lait at the end")
    header = {"csv": "text\n", "jsonl": "", "txt": ""}[fmt]
    body = "".join((json.dumps({"text": t}) if fmt == "jsonl" else t) + "\n" for t in lines)
    path = tmp_path / f"late.{fmt}"
    path.write_bytes((header + body).replace("\\u00e9", "\xe9").encode("cp1252"))
    assert path.stat().st_size > 2 * 65536
    corpus = read_corpus(path)
    assert corpus.encoding == "cp1252"
    assert corpus.n_rows == len(lines)
    assert corpus.texts[0] == lines[0] and corpus.texts[-1] == "café au lait at the end"


def test_a_gzip_bomb_is_refused_while_streaming(tmp_path):
    path = tmp_path / "bomb.jsonl.gz"
    with gzip.open(path, "wt") as out:
        for i in range(50_000):
            out.write(json.dumps({"text": f"the same text again {i}"}) + "\n")
    assert path.stat().st_size < 500_000
    with pytest.raises(IngestError, match="over the limit.*after decompression"):
        read_corpus(path, max_bytes=1_000_000)
    assert read_corpus(path, max_bytes=10_000_000).n_rows == 50_000


def test_a_quoted_newline_and_a_line_separator_stay_inside_one_text(tmp_path):
    path = tmp_path / "quoted.csv"
    path.write_bytes('id,text\r\n1,"first line\r\nsecond line"\r\n2,one\u2028line\r\n'.encode())
    corpus = read_corpus(path)
    assert corpus.n_rows == 2
    assert "second line" in corpus.texts[0] and corpus.texts[1].startswith("one")
