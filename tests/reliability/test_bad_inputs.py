"""Messy files through the CLI (in-process) and the ingest function the app calls.

Each case ends in an error that names the problem and the fix, with the database unchanged,
or in a correct result. tests/unit/test_ingest.py covers the ingest basics; these go through
``corpusmap run`` on a real SQLite file with the real model.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import time

import numpy as np
import pandas as pd
import pytest

from clustering import read_corpus_bytes
from clustering.errors import ColumnError, IngestError
from clustering.ingest import MAX_UPLOAD_ENV, max_upload_bytes
from tests.reliability.conftest import TOPICS, invoke, table_counts, topic_texts


def csv_bytes(texts, encoding="utf-8", column="text") -> bytes:
    return pd.DataFrame({column: texts}).to_csv(index=False).encode(encoding)


def xlsx_bytes(sheets: dict[str, pd.DataFrame]) -> bytes:
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        for name, frame in sheets.items():
            frame.to_excel(writer, sheet_name=name, index=False)
    return buffer.getvalue()


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


# --- errors: a message naming the problem and the fix; nothing written -------------------

BAD_FILES = {
    "empty file": ("x.csv", b"", (), r"empty; choose a file"),
    "header only": ("x.csv", b"text,label\n", (), r"no data rows.*add rows"),
    "binary file named .csv": (
        "photo.csv",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 20,
        (),
        r"binary.*Export it as CSV",
    ),
    "malformed JSONL line": (
        "x.jsonl",
        b'{"text": "fine"}\n{"text": "fine too"}\n{"text": broken\n{"text": "never read"}\n',
        (),
        r"line 3 is not valid JSON.*fix or remove that line",
    ),
    "JSON object, not an array": (
        "x.json",
        b'{"a": {"text": "x"}, "b": 2}',
        (),
        r"not an array of objects.*give a list",
    ),
    "JSON array of numbers": ("x.json", b"[1, 2, 3]", (), r"array mixes objects|not an array"),
    "JSON scalar": ("x.json", b'"just a string"', (), r"holds a str, not an array"),
    "Parquet with no string column": (
        "x.parquet",
        parquet_bytes(pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 1.5, 2.5]})),
        (),
        r"no column holds text.*column of strings",
    ),
    "chosen column missing": (
        "x.csv",
        csv_bytes(topic_texts()),
        ("--text-column", "body"),
        r"no column 'body'.*file has: text.*Pass one of these",
    ),
    "chosen column numeric": (
        "x.csv",
        pd.DataFrame({"text": topic_texts(), "score": range(15)}).to_csv(index=False).encode(),
        ("--text-column", "score"),
        r"column 'score' holds numbers.*choose a column of texts \(text-like columns: text\)",
    ),
    "all texts empty": (
        "x.csv",
        b"text,id\n,1\n  ,2\n\t,3\n",
        ("--text-column", "text"),
        r"every text in column 'text'.*is empty; choose another column",
    ),
    "truncated gzip": (
        "x.csv.gz",
        gzip.compress(csv_bytes(topic_texts() * 200))[:300],
        (),
        r"truncated or damaged.*compress it again",
    ),
    "named .gz but not gzip": ("x.csv.gz", csv_bytes(topic_texts()), (), r"not gzip.*remove"),
    "unknown extension": ("x.docx", b"text\nhello\n", (), r"cannot tell the format.*name the file"),
    "damaged XLSX": ("x.xlsx", b"PK\x03\x04 not really a zip", (), r"cannot read the XLSX"),
    "UTF-16 BOM with odd bytes": (
        "x.csv",
        b"\xff\xfe" + "text\nhello\n".encode("utf-16-le") + b"\x00",
        (),
        r"byte-order mark.*re-save it as UTF-8",
    ),
    "missing label column": (
        "x.csv",
        csv_bytes(topic_texts()),
        ("--label-column", "gold"),
        r"no label column 'gold'",
    ),
    "bad output extension": (
        "x.csv",
        csv_bytes(topic_texts()),
        ("--out-name", "o.docx"),
        r"export format",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES), ids=list(BAD_FILES))
def test_bad_file_fails_with_a_clear_message_and_writes_nothing(case, tmp_path, seeded_db):
    name, data, extra, pattern = BAD_FILES[case]
    path = tmp_path / name
    path.write_bytes(data)
    out = tmp_path / "out.csv"
    extra = list(extra)
    if extra[:1] == ["--out-name"]:
        out, extra = tmp_path / extra[1], []
    before = table_counts(seeded_db)
    result = invoke("run", str(path), "--out", str(out), "--db", str(seeded_db), "-q", *extra)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1  # one line, no traceback
    assert re.search(pattern, result.stderr), result.stderr
    assert table_counts(seeded_db) == before
    assert not out.exists()


def test_file_over_the_upload_limit_names_the_setting(tmp_path, seeded_db):
    path = tmp_path / "big.csv"
    path.write_bytes(csv_bytes(topic_texts() * 100))  # ~60 kB
    before = table_counts(seeded_db)
    env = {MAX_UPLOAD_ENV: "0.01"}  # 10 kB
    result = invoke(
        "run", str(path), "--out", str(tmp_path / "o.csv"), "--db", str(seeded_db), env=env
    )
    assert result.exit_code == 2
    assert "over the limit of 0.0 MB" in result.stderr or "over the limit" in result.stderr
    assert "CORPUSMAP_MAX_UPLOAD_MB" in result.stderr and "split the file" in result.stderr
    assert table_counts(seeded_db) == before


def test_gzip_bomb_is_stopped_after_decompression(monkeypatch):
    monkeypatch.setenv(MAX_UPLOAD_ENV, "0.1")
    bomb = gzip.compress(b"text\n" + b"a" * 5_000_000)
    assert len(bomb) < 100_000
    with pytest.raises(IngestError, match="after decompression"):
        read_corpus_bytes(bomb, "x.csv.gz")


@pytest.mark.parametrize(
    ("value", "pattern"), [("abc", "not a number"), ("-5", "must be positive")]
)
def test_a_bad_upload_limit_setting_is_reported(monkeypatch, value, pattern):
    monkeypatch.setenv(MAX_UPLOAD_ENV, value)
    with pytest.raises(IngestError, match=f"{MAX_UPLOAD_ENV}.*{pattern}"):
        max_upload_bytes()


def test_upload_limit_is_available_to_the_app(monkeypatch):
    monkeypatch.setenv(MAX_UPLOAD_ENV, "200")
    assert max_upload_bytes() == 200_000_000
    monkeypatch.delenv(MAX_UPLOAD_ENV)
    assert max_upload_bytes() == 2 * 1024**3


def test_llm_labeler_without_endpoint_fails_before_storing(tmp_path, seeded_db, monkeypatch):
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "x.csv"
    path.write_bytes(csv_bytes(topic_texts()))
    before = table_counts(seeded_db)
    result = invoke(
        "run",
        str(path),
        "--out",
        str(tmp_path / "o.csv"),
        "--db",
        str(seeded_db),
        "--labeler",
        "llm",
    )
    assert result.exit_code == 2 and "OPENAI_BASE_URL" in result.stderr
    assert table_counts(seeded_db) == before


# --- files that must work ---------------------------------------------------------------


def run_ok(tmp_path, name: str, data: bytes, *extra: str):
    path = tmp_path / name
    path.write_bytes(data)
    out = tmp_path / "out.jsonl"
    db = tmp_path / "ok.db"
    result = invoke("run", str(path), "--out", str(out), "--db", str(db), "-q", "--json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), pd.read_json(out, lines=True, dtype=False), result.stderr


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "cp1252", "latin-1", "utf-8-sig"])
def test_encodings_through_the_cli(tmp_path, encoding):
    texts = [t.replace("abroad", "à l'étranger") for t in topic_texts()]
    summary, frame, _ = run_ok(tmp_path, "x.csv", csv_bytes(texts, encoding))
    assert list(frame.columns[:1]) == ["text"]  # no BOM glued to the header
    assert frame["text"].tolist() == texts
    assert summary["texts"] == 15


def test_ragged_rows_are_kept_with_a_warning(tmp_path):
    lines = ["id,text"] + [f"{i},{t}" for i, t in enumerate(topic_texts())]
    lines[3] = "2,A card payment, sadly, went through twice"  # unquoted commas
    lines[5] = "4"  # too few fields
    summary, frame, stderr = run_ok(tmp_path, "x.csv", "\n".join(lines).encode())
    assert len(frame) == 15
    assert frame["text"][2] == "A card payment, sadly, went through twice"
    assert "1 row(s) had more fields than the header" in stderr and "Quote texts" in stderr


def test_quoted_newlines_stay_inside_one_text(tmp_path):
    texts = topic_texts()
    texts[0] = "My card payment\nwas declined\r\nat the shop"
    summary, frame, _ = run_ok(tmp_path, "x.csv", csv_bytes(texts))
    assert len(frame) == 15 and "was declined" in frame["text"][0]


def test_xlsx_with_several_sheets_reads_the_first_with_data_and_says_so(tmp_path):
    data = xlsx_bytes(
        {
            "Empty": pd.DataFrame({"x": []}),
            "Tickets": pd.DataFrame({"text": topic_texts()}),
            "Other": pd.DataFrame({"text": ["not this one"] * 3}),
        }
    )
    summary, frame, stderr = run_ok(tmp_path, "book.xlsx", data)
    assert frame["text"].tolist() == topic_texts()
    assert "3 sheets; read 'Tickets'" in stderr
    summary, frame, _ = run_ok(tmp_path, "book.xlsx", data, "--sheet", "Other")
    assert frame["text"].tolist() == ["not this one"] * 3


@pytest.mark.parametrize("n", [1, 2])
def test_one_and_two_texts_give_one_cluster(tmp_path, n):
    summary, frame, _ = run_ok(tmp_path, "x.csv", csv_bytes(topic_texts()[:n]))
    assert summary["metrics"]["n_clusters"] == 1 and len(frame) == n
    assert (frame["cluster_id"] == 0).all() and frame["cluster_label"].str.len().gt(0).all()


def test_all_identical_texts_are_one_cluster(tmp_path):
    summary, frame, _ = run_ok(tmp_path, "x.csv", csv_bytes(["Where is my card?"] * 40))
    assert summary["metrics"]["n_clusters"] == 1 and summary["duplicates"] == 39
    assert summary["timings"]["embed_embedded"] == 1


@pytest.mark.slow  # 100,000 rows through the CLI; CI runs it (make test-slow)
def test_100k_identical_texts_embed_once_and_finish_fast(tmp_path):
    start = time.perf_counter()
    summary, frame, _ = run_ok(
        tmp_path, "x.csv.gz", gzip.compress(csv_bytes(["Where is my card?"] * 100_000))
    )
    seconds = time.perf_counter() - start
    assert summary["timings"]["embed_embedded"] == 1 and summary["timings"]["embed_distinct"] == 1
    assert summary["metrics"]["n_clusters"] == 1 and len(frame) == 100_000
    assert summary["timings"]["reduce"] < 5  # no UMAP on a degenerate graph
    assert seconds < 180, f"took {seconds:.0f} s"


def test_a_10_mb_text_is_cut_to_the_model_window_with_a_warning(tmp_path):
    long = "The card payment was declined again and again. " * 220_000  # ~10 MB
    texts = [*topic_texts()[:14], long]  # 15 texts: below UMAP's minimum, no numba compile
    summary, frame, stderr = run_ok(
        tmp_path, "x.jsonl", "\n".join(json.dumps({"text": t}) for t in texts).encode()
    )
    assert len(frame) == 15 and len(frame["text"][14]) == len(long)
    assert "1 text(s) are longer than the embedding model's window of 256 tokens" in stderr
    assert "Split long documents" in stderr
    xlsx = tmp_path / "out.xlsx"
    assert (
        invoke(
            "export", str(summary["run_id"]), "--out", str(xlsx), "--db", str(tmp_path / "ok.db")
        ).exit_code
        == 0
    )
    cell = pd.read_excel(xlsx)["text"][14]
    assert len(cell) <= 32_767 and cell.endswith("export CSV or JSONL for the full text]")


def test_nul_bytes_and_control_characters_are_cleaned(tmp_path):
    texts = topic_texts()
    texts[0] = "My card\x00 payment\x07 was\x1b declined\x0c"
    frame_in = pd.DataFrame({"text": texts, "note": ["bell\x07 and nul\x00"] * 15})
    data = frame_in.to_csv(index=False).encode()
    assert read_corpus_bytes(data, "x.csv").texts[0] == "My card  payment  was  declined"
    summary, frame, _ = run_ok(tmp_path, "x.csv", data)
    assert len(frame) == 15  # the export keeps the raw cells; what was clustered is clean
    xlsx = tmp_path / "out.xlsx"  # the raw note column still holds them: XLSX must cope
    assert (
        invoke(
            "export", str(summary["run_id"]), "--out", str(xlsx), "--db", str(tmp_path / "ok.db")
        ).exit_code
        == 0
    )
    assert pd.read_excel(xlsx)["note"][0] == "bell and nul"


def test_emoji_and_right_to_left_scripts_round_trip(tmp_path):
    texts = topic_texts()
    texts[0] = "My card was declined 😡💳 again"
    texts[5] = "نسيت رقم PIN الخاص بي"
    texts[10] = "העברה לא הגיעה 🙏"
    summary, frame, _ = run_ok(tmp_path, "x.csv", csv_bytes(texts))
    assert frame["text"].tolist() == texts
    assert summary["metrics"]["n_clusters"] >= 1


def test_non_english_corpus_works_and_warns_about_the_model(tmp_path):
    texts = [
        "Ma carte bancaire a été refusée au magasin",
        "Pourquoi mon paiement par carte est-il toujours en attente ?",
        "Le paiement par carte a été débité deux fois",
        "Ma carte a été refusée à l'étranger",
        "Je ne trouve pas mon code secret",
        "Comment changer le code de ma carte ?",
        "Mon code est bloqué après trois essais",
        "Le virement n'est toujours pas arrivé sur mon compte",
        "Comment annuler un virement ?",
        "Quels sont les frais pour un virement à l'étranger ?",
        "J'ai envoyé le virement sur le mauvais compte",
        "Je voudrais fermer mon compte courant",
    ]
    summary, frame, stderr = run_ok(tmp_path, "x.csv", csv_bytes(texts))
    assert len(frame) == 12 and summary["metrics"]["n_clusters"] >= 1
    assert "do not look English" in stderr and "multilingual" in stderr and "--embedder" in stderr


def test_english_corpus_gets_no_language_warning(tmp_path):
    _, _, stderr = run_ok(tmp_path, "x.csv", csv_bytes(topic_texts()))
    assert "English" not in stderr


def test_duplicate_and_blank_column_names_are_made_unique(tmp_path):
    lines = ["text,text,"] + [f'"{t}",b,c' for t in topic_texts()]
    summary, frame, _ = run_ok(tmp_path, "x.csv", "\n".join(lines).encode())
    assert (
        len(frame) == 15
        and frame.columns[0] == "text"
        and len(set(frame.columns)) == len(frame.columns)
    )


def test_json_wrapped_in_an_object_is_read(tmp_path):
    data = json.dumps({"data": [{"text": t} for t in topic_texts()], "count": 15}).encode()
    summary, frame, _ = run_ok(tmp_path, "x.json", data)
    assert frame["text"].tolist() == topic_texts()


def test_mixed_line_endings_and_trailing_blank_lines(tmp_path):
    body = (
        "text\r\n" + "\r\n".join(topic_texts()[:7]) + "\n" + "\n".join(topic_texts()[7:]) + "\n\n\n"
    )
    summary, frame, _ = run_ok(tmp_path, "x.csv", body.encode())
    assert frame["text"].tolist() == topic_texts()


# --- the ingest function the app's upload calls ------------------------------------------


def test_app_upload_path_reads_bytes_with_the_same_checks(monkeypatch):
    corpus = read_corpus_bytes(csv_bytes(topic_texts(), "utf-16"), "upload.csv")
    assert corpus.texts == topic_texts() and corpus.encoding == "utf-16"
    monkeypatch.setenv(MAX_UPLOAD_ENV, "0.0001")
    with pytest.raises(IngestError, match="over the limit"):
        read_corpus_bytes(csv_bytes(topic_texts()), "upload.csv")
    with pytest.raises(ColumnError, match="holds numbers"):
        read_corpus_bytes(b"text,n\na,1\nb,2\n", "u.csv", text_column="n", max_bytes=10_000)


def test_parquet_with_text_and_other_types_keeps_every_column(tmp_path):
    frame_in = pd.DataFrame(
        {"text": topic_texts(), "n": np.arange(15), "when": pd.date_range("2026-01-01", periods=15)}
    )
    summary, frame, _ = run_ok(tmp_path, "x.parquet", parquet_bytes(frame_in))
    assert frame["text"].tolist() == topic_texts() and frame["n"].tolist() == list(range(15))


def test_topics_are_found_in_the_small_corpus(tmp_path):
    summary, frame, _ = run_ok(tmp_path, "x.csv", csv_bytes(topic_texts()), "--n-clusters", "3")
    ids = frame["cluster_id"].tolist()
    assert [len(set(ids[i : i + 5])) for i in (0, 5, 10)] == [1, 1, 1], ids
    assert len(TOPICS) == summary["metrics"]["n_clusters"]
