"""Read a corpus file (CSV, TSV, JSONL, JSON, TXT, Parquet, XLSX, gzip of the text formats).

The encoding and the text column are detected and can be overridden. Every input row is kept
in input order, with every column; rows whose text is empty are marked, not removed, so that an
export holds each input row exactly once.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import os
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO, TextIO

import pandas as pd

from clustering.columns import choose_text_column, clean_text
from clustering.encoding import HEAD_BYTES, candidate_encodings, decode_bytes, refuse_if_last
from clustering.errors import EmptyCorpusError, IngestError
from clustering.language import language_warning
from clustering.types import Corpus

log = logging.getLogger(__name__)

FORMATS = ("csv", "tsv", "jsonl", "json", "txt", "parquet", "xlsx")
EXTENSION_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".txt": "txt",
    ".text": "txt",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".xlsx": "xlsx",
}
DEFAULT_MAX_BYTES = 2 * 1024**3
"""Largest file (after decompression) read in one go, unless CORPUSMAP_MAX_UPLOAD_MB says
otherwise; configurable per call."""
MAX_UPLOAD_ENV = "CORPUSMAP_MAX_UPLOAD_MB"
STREAMED_FORMATS = ("csv", "tsv", "jsonl", "txt")
"""Formats parsed row by row from a decoded stream; the others need the whole file."""


def detect_format(filename: str) -> str:
    """The format named by a file's extension (``data.csv.gz`` → ``csv``)."""
    suffixes = [s.lower() for s in Path(filename).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in EXTENSION_FORMATS:
        return EXTENSION_FORMATS[suffixes[-1]]
    raise IngestError(
        f"cannot tell the format of {Path(filename).name!r}: name the file with one of "
        f"{', '.join(sorted(EXTENSION_FORMATS))} (optionally + .gz), or pass the format explicitly"
    )


def max_upload_bytes() -> int:
    """The largest corpus file accepted: $CORPUSMAP_MAX_UPLOAD_MB megabytes, else 2 GiB."""
    raw = os.environ.get(MAX_UPLOAD_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_BYTES
    try:
        megabytes = float(raw)
    except ValueError as err:
        raise IngestError(
            f"{MAX_UPLOAD_ENV}={raw!r} is not a number of megabytes; set it to e.g. 200, or unset it"
        ) from err
    if megabytes <= 0:
        raise IngestError(f"{MAX_UPLOAD_ENV} must be positive, got {raw!r}; set it to e.g. 200")
    return int(megabytes * 1_000_000)


def read_corpus(
    source: str | Path,
    *,
    text_column: str | None = None,
    format: str | None = None,
    name: str | None = None,
    max_bytes: int | None = None,
    sheet: str | int | None = None,
) -> Corpus:
    """Read a corpus file from disk (at most ``max_bytes``, default ``max_upload_bytes()``).

    CSV, TSV, JSONL and TXT files (and their gzip) are read as a stream: the file's bytes and
    its decoded text are never held whole, only the rows (``read_stream``)."""
    if max_bytes is None:
        max_bytes = max_upload_bytes()
    path = Path(source)
    if not path.exists():
        raise IngestError(f"no such file: {path}; check the path")
    if path.is_dir():
        raise IngestError(f"{path} is a folder; give a file")
    size = path.stat().st_size
    if size > max_bytes and not path.name.lower().endswith(".gz"):
        raise IngestError(_too_large(size, max_bytes))
    with path.open("rb") as stream:
        return read_stream(
            stream,
            path.name,
            text_column=text_column,
            format=format,
            name=name,
            max_bytes=max_bytes,
            sheet=sheet,
        )


def _too_large(size: int, max_bytes: int) -> str:
    return (
        f"the file is {size / 1e6:,.1f} MB, over the limit of {max_bytes / 1e6:,.1f} MB; raise the "
        "limit (CORPUSMAP_MAX_UPLOAD_MB) or split the file"
    )


def read_corpus_bytes(data: bytes, filename: str, **options: Any) -> Corpus:
    """Read a corpus from the bytes of a file called ``filename`` (its extension names the
    format), with the options of ``read_stream``: an upload. Files over ``max_bytes`` (default
    ``max_upload_bytes()``) are refused, before and after decompression."""
    return read_stream(io.BytesIO(data), filename, **options)


def read_stream(
    stream: BinaryIO,
    filename: str,
    *,
    text_column: str | None = None,
    format: str | None = None,
    name: str | None = None,
    max_bytes: int | None = None,
    sheet: str | int | None = None,
) -> Corpus:
    """Read a corpus from a seekable binary ``stream`` of a file called ``filename``: the one
    road of ``read_corpus`` (a path) and ``read_corpus_bytes`` (an upload)."""
    if max_bytes is None:
        max_bytes = max_upload_bytes()
    fmt = (format or detect_format(filename)).lower()
    if fmt not in FORMATS:
        raise IngestError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    head = stream.read(2)
    stream.seek(0)
    if filename.lower().endswith(".gz") or head == b"\x1f\x8b":
        if head != b"\x1f\x8b":
            raise IngestError(
                "the file is named .gz but is not gzip-compressed; remove the .gz suffix"
            )
        reader = _LimitedReader(gzip.GzipFile(fileobj=stream), max_bytes)
    else:
        reader = _LimitedReader(stream, max_bytes)
    try:
        encoding = "binary"
        warnings: list[str] = []
        if fmt in STREAMED_FORMATS:
            frame, notes, encoding = _read_streamed(reader, fmt, filename)
            warnings.extend(notes)
        else:
            data = reader.read()
            if not data.strip():
                raise EmptyCorpusError(f"{filename} is empty; choose a file that holds texts")
            if fmt == "parquet":
                frame = _read_parquet(data)
            elif fmt == "xlsx":
                frame, sheet_note = _read_xlsx(data, sheet)
                if sheet_note:
                    warnings.append(sheet_note)
            else:
                text, encoding = decode_bytes(data)
                del data
                frame = _read_json(text)
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise IngestError(
            f"the gzip file is truncated or damaged ({err}); download or compress it again"
        ) from err
    frame = _normalise_columns(frame)
    if frame.empty or len(frame.columns) == 0:
        raise EmptyCorpusError(f"{filename} has no data rows (only a header?); add rows with texts")
    column = choose_text_column(frame, text_column)
    texts = [clean_text(v) for v in frame[column].tolist()]
    if not any(texts):
        raise EmptyCorpusError(
            f"every text in column {column!r} of {filename} is empty; choose another column "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )
    language_note = language_warning(texts)
    if language_note:
        warnings.append(language_note)
    corpus = Corpus(
        name=name or Path(filename).name,
        frame=frame.reset_index(drop=True),
        text_column=column,
        texts=texts,
        encoding=encoding,
        format=fmt,
        warnings=tuple(warnings),
    )
    log.info(
        "read %s: %d rows, text column %r, %d empty, %d duplicates, encoding %s",
        corpus.name,
        corpus.n_rows,
        column,
        corpus.n_empty,
        corpus.n_duplicates,
        encoding,
    )
    return corpus


class _LimitedReader(io.RawIOBase):
    """A binary stream that refuses to yield more than ``max_bytes`` (a gzip bomb, a file grown
    past the limit), and can start again from the beginning (``rewind``)."""

    def __init__(self, inner: BinaryIO | gzip.GzipFile, max_bytes: int) -> None:
        self.inner = inner
        self.max_bytes = max_bytes
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.inner.read(len(buffer))
        self.count += len(data)
        if self.count > self.max_bytes:
            compressed = isinstance(self.inner, gzip.GzipFile)
            raise IngestError(
                _too_large(self.count, self.max_bytes)
                + (" (after decompression)" if compressed else "")
            )
        buffer[: len(data)] = data
        return len(data)

    def rewind(self) -> None:
        self.inner.seek(0)
        self.count = 0


def _read_streamed(
    stream: _LimitedReader, fmt: str, filename: str
) -> tuple[pd.DataFrame, list[str], str]:
    """Parse a text format row by row from ``stream``, decoded in the encoding its head shows;
    where a later byte does not decode, again from the start in cp1252, then Latin-1."""
    head = stream.read(HEAD_BYTES)
    if not head.strip():
        rest = stream.read(HEAD_BYTES)
        if not rest.strip():
            raise EmptyCorpusError(f"{filename} is empty; choose a file that holds texts")
    encodings = candidate_encodings(head)
    for number, encoding in enumerate(encodings):
        stream.rewind()
        buffered = io.BufferedReader(stream)
        text = io.TextIOWrapper(buffered, encoding=encoding, newline="")
        try:
            frame, notes = _read_text_format(text, fmt, head.decode(encoding, errors="ignore"))
            return frame, notes, encoding
        except UnicodeDecodeError as err:
            refuse_if_last(encodings, number, head, err)
        finally:
            text.detach()
            buffered.detach()  # closing them would close ``stream``, read again next
    raise AssertionError("unreachable")  # pragma: no cover


def _read_text_format(text: TextIO, fmt: str, head: str) -> tuple[pd.DataFrame, list[str]]:
    """Rows of a CSV, TSV, JSONL or TXT stream; ``head`` is its beginning, for the header."""
    if fmt in ("csv", "tsv"):
        return _read_delimited(text, "\t" if fmt == "tsv" else None, head)
    if fmt == "jsonl":
        return _read_jsonl(text), []
    lines = [line.rstrip("\r\n") for line in text]
    while lines and not lines[-1].strip():
        lines.pop()
    return pd.DataFrame({"text": lines}), []


def _read_delimited(text: TextIO, sep: str | None, head: str) -> tuple[pd.DataFrame, list[str]]:
    if sep is None:
        sep = _sniff_separator(head)
    ragged: list[int] = []

    def keep_long_row(fields: list[str]) -> list[str]:
        # A row with more fields than the header (an unquoted separator in a text) is kept,
        # its extra fields joined back into the last column, rather than silently dropped.
        ragged.append(len(fields))
        return [*fields[: width - 1], sep.join(fields[width - 1 :])]

    header = next(csv.reader(io.StringIO(head), delimiter=sep), [])
    width = max(len(header), 1)
    try:
        frame = pd.read_csv(
            text,
            sep=sep,
            dtype=str,
            keep_default_na=False,
            on_bad_lines=keep_long_row,
            engine="python",
        )
    except pd.errors.EmptyDataError as err:
        raise EmptyCorpusError("the file has no columns; is it empty?") from err
    except (pd.errors.ParserError, csv.Error) as err:
        raise IngestError(f"cannot parse the file as CSV: {err}; check its quoting") from err
    notes = []
    if ragged:
        notes.append(
            f"{len(ragged)} row(s) had more fields than the header's {width}; their extra "
            f"fields were joined into the last column {header[-1]!r}. Quote texts that contain "
            f"the separator {sep!r} (or save the file as XLSX) to keep the columns apart"
        )
    return frame, notes


def _sniff_separator(text: str) -> str:
    """Comma unless the header line clearly uses tabs or semicolons."""
    first = text.split("\n", 1)[0]
    counts = {sep: first.count(sep) for sep in (",", "\t", ";", "|")}
    best = max(counts, key=lambda s: counts[s])
    return best if counts[best] > counts[","] else ","


def _read_jsonl(lines: Iterable[str]) -> pd.DataFrame:
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            raise IngestError(
                f"line {number} is not valid JSON ({err.msg}); fix or remove that line"
            ) from err
        if isinstance(value, str):
            value = {"text": value}
        if not isinstance(value, dict):
            raise IngestError(
                f"line {number} is a JSON {type(value).__name__}, not an object; each line must "
                'be an object such as {"text": "..."}'
            )
        rows.append(value)
    return pd.DataFrame(rows)


def _read_json(text: str) -> pd.DataFrame:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        if "\n{" in text.strip() or text.lstrip().startswith("{"):
            try:
                return _read_jsonl(text.splitlines())
            except IngestError:
                pass
        raise IngestError(
            f"not valid JSON ({err.msg} at line {err.lineno}); a JSON corpus is an array of "
            "objects, or use .jsonl for one object per line"
        ) from err
    if isinstance(value, dict):
        # {"data": [...]} and similar wrappers: take the single list of objects inside.
        lists = [v for v in value.values() if isinstance(v, list)]
        if len(lists) == 1:
            value = lists[0]
        else:
            raise IngestError(
                "the JSON is an object, not an array of objects; give a list such as "
                '[{"text": "..."}, ...]'
            )
    if not isinstance(value, list):
        raise IngestError(
            f"the JSON holds a {type(value).__name__}, not an array of objects; give a list such "
            'as [{"text": "..."}, ...]'
        )
    if all(isinstance(v, str) for v in value):
        return pd.DataFrame({"text": value})
    if not all(isinstance(v, dict) for v in value):
        raise IngestError(
            "the JSON array mixes objects with other values; every element must be an object "
            'such as {"text": "..."}'
        )
    return pd.DataFrame(value)


def _read_parquet(data: bytes) -> pd.DataFrame:
    try:
        return pd.read_parquet(io.BytesIO(data))
    except Exception as err:  # pyarrow raises many types for damaged files
        raise IngestError(f"cannot read the Parquet file ({err}); is it complete?") from err


def _read_xlsx(data: bytes, sheet: str | int | None) -> tuple[pd.DataFrame, str]:
    try:
        sheets = pd.read_excel(io.BytesIO(data), sheet_name=None, dtype=object)
    except Exception as err:  # openpyxl raises many types for damaged files
        raise IngestError(f"cannot read the XLSX file ({err}); is it a valid .xlsx?") from err
    if not sheets:
        raise EmptyCorpusError("the workbook has no sheets")
    names = list(sheets)
    if sheet is not None:
        key = names[sheet] if isinstance(sheet, int) and sheet < len(names) else sheet
        if key not in sheets:
            raise IngestError(f"no sheet {sheet!r}; the workbook has {', '.join(names)}")
        return sheets[key], ""
    non_empty = [n for n in names if not sheets[n].dropna(how="all").empty]
    chosen = non_empty[0] if non_empty else names[0]
    note = ""
    if len(names) > 1:
        note = f"the workbook has {len(names)} sheets; read {chosen!r} (choose another with sheet=)"
    return sheets[chosen], note


def _normalise_columns(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    names: list[str] = []
    for i, col in enumerate(frame.columns):
        name = str(col).strip() if col is not None else ""
        if not name or name.startswith("Unnamed:"):
            name = f"column_{i + 1}"
        while name in names:
            name = f"{name}_"
        names.append(name)
    frame.columns = names
    return frame
