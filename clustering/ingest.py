"""Read a corpus file (CSV, TSV, JSONL, JSON, TXT, Parquet, XLSX, gzip of the text formats).

The encoding and the text column are detected and can be overridden. Every input row is kept
in input order, with every column; rows whose text is empty are marked, not removed, so that an
export holds each input row exactly once.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import logging
import os
import zlib
from pathlib import Path

import pandas as pd

from clustering.columns import choose_text_column, clean_text
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


def decode_bytes(data: bytes) -> tuple[str, str]:
    """Text and encoding name of ``data``: BOMs first, then UTF-8, UTF-16 without BOM, cp1252."""
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            try:
                return data.decode(encoding), encoding
            except UnicodeDecodeError as err:
                raise IngestError(
                    f"the file starts with a {encoding} byte-order mark but is not valid {encoding} "
                    f"({err.reason} at byte {err.start}); re-save it as UTF-8"
                ) from err
    sample = data[:4096]
    if sample and sample.count(0) > len(sample) // 4:
        # Text in UTF-16 without a BOM has a NUL in every other byte for ASCII characters.
        even_nuls = sample[0::2].count(0)
        odd_nuls = sample[1::2].count(0)
        encoding = "utf-16-le" if odd_nuls > even_nuls else "utf-16-be"
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            text = ""
        if text and _mostly_printable(text[:2048]):
            return text, encoding
        raise IngestError(
            "the file looks binary, not text (it is full of NUL bytes): is it really a "
            "text file? Export it as CSV, JSONL or XLSX and upload that"
        )
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    if _looks_binary(sample):
        raise IngestError(
            "the file looks binary, not text: is it really a text file? Export it as CSV, "
            "JSONL or XLSX and upload that"
        )
    # cp1252 is the Latin-1 superset every spreadsheet on Windows writes; bytes it leaves
    # undefined fall back to Latin-1.
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def _mostly_printable(text: str) -> bool:
    printable = sum(1 for ch in text if ch.isprintable() or ch in "\t\n\r")
    return printable >= 0.95 * len(text)


def _looks_binary(sample: bytes) -> bool:
    if b"\x00" in sample:
        return True
    controls = sum(1 for b in sample if b < 32 and b not in (9, 10, 13))
    return controls > max(8, len(sample) // 20)


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
    """Read a corpus file from disk (at most ``max_bytes``, default ``max_upload_bytes()``)."""
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
    return read_corpus_bytes(
        path.read_bytes(),
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


def read_corpus_bytes(
    data: bytes,
    filename: str,
    *,
    text_column: str | None = None,
    format: str | None = None,
    name: str | None = None,
    max_bytes: int | None = None,
    sheet: str | int | None = None,
) -> Corpus:
    """Read a corpus from the bytes of a file called ``filename`` (its extension names the format).

    Files over ``max_bytes`` (default ``max_upload_bytes()``) are refused, before and after
    decompression.
    """
    if max_bytes is None:
        max_bytes = max_upload_bytes()
    fmt = (format or detect_format(filename)).lower()
    if fmt not in FORMATS:
        raise IngestError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if filename.lower().endswith(".gz") or data[:2] == b"\x1f\x8b":
        data = _gunzip(data, max_bytes)
    if len(data) > max_bytes:
        raise IngestError(_too_large(len(data), max_bytes))
    if not data.strip():
        raise EmptyCorpusError(f"{filename} is empty; choose a file that holds texts")

    encoding = "binary"
    warnings: list[str] = []
    if fmt == "parquet":
        frame = _read_parquet(data)
    elif fmt == "xlsx":
        frame, sheet_note = _read_xlsx(data, sheet)
        if sheet_note:
            warnings.append(sheet_note)
    else:
        text, encoding = decode_bytes(data)
        frame, notes = _read_text_format(text, fmt)
        warnings.extend(notes)
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


def _gunzip(data: bytes, max_bytes: int) -> bytes:
    if data[:2] != b"\x1f\x8b":
        raise IngestError("the file is named .gz but is not gzip-compressed; remove the .gz suffix")
    out = io.BytesIO()
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            while chunk := stream.read(1 << 20):
                out.write(chunk)
                if out.tell() > max_bytes:
                    raise IngestError(_too_large(out.tell(), max_bytes) + " (after decompression)")
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise IngestError(
            f"the gzip file is truncated or damaged ({err}); download or compress it again"
        ) from err
    return out.getvalue()


def _read_text_format(text: str, fmt: str) -> tuple[pd.DataFrame, list[str]]:
    if fmt in ("csv", "tsv"):
        return _read_delimited(text, "\t" if fmt == "tsv" else None)
    if fmt == "jsonl":
        return _read_jsonl(text), []
    if fmt == "json":
        return _read_json(text), []
    lines = [line for line in text.splitlines()]
    while lines and not lines[-1].strip():
        lines.pop()
    return pd.DataFrame({"text": lines}), []


def _read_delimited(text: str, sep: str | None) -> tuple[pd.DataFrame, list[str]]:
    if sep is None:
        sep = _sniff_separator(text)
    ragged: list[int] = []

    def keep_long_row(fields: list[str]) -> list[str]:
        # A row with more fields than the header (an unquoted separator in a text) is kept,
        # its extra fields joined back into the last column, rather than silently dropped.
        ragged.append(len(fields))
        return [*fields[: width - 1], sep.join(fields[width - 1 :])]

    header = next(csv.reader(io.StringIO(text), delimiter=sep), [])
    width = max(len(header), 1)
    try:
        frame = pd.read_csv(
            io.StringIO(text),
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


def _read_jsonl(text: str) -> pd.DataFrame:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
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
                return _read_jsonl(text)
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
