"""Writing tables to files: CSV, TSV, JSONL, JSON, Parquet, XLSX by the file's extension.

Spreadsheet formats (CSV, TSV, XLSX) neutralise cells that a spreadsheet would run as a formula:
a text cell starting (after any spaces) with =, +, -, @, tab, carriage return or newline gets a
leading apostrophe (OWASP's advice for CSV injection). XLSX cells also lose the control
characters XML cannot hold and are cut at Excel's 32,767 characters. JSONL and Parquet keep the
data as it is: they are read by programs.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pandas as pd

from corpusmap.errors import CorpusmapError

EXPORT_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".xlsx": "xlsx",
}
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")
XLSX_CELL_CHARS = 32_767
"""Excel's limit per cell; a longer text is cut, with a note (CSV and JSONL keep it whole)."""
# Characters XML 1.0 (and so XLSX) cannot hold: openpyxl refuses the whole file otherwise.
_XLSX_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def export_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in EXPORT_FORMATS:
        raise CorpusmapError(
            f"cannot tell the export format of {Path(path).name!r}: end the name with "
            f"{', '.join(EXPORT_FORMATS)}"
        )
    return EXPORT_FORMATS[suffix]


def neutralise_cell(value: object) -> object:
    # Leading spaces do not stop a spreadsheet from running " =1+1" on import.
    if isinstance(value, str) and value.lstrip(" ").startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def xlsx_cell(value: object) -> object:
    """A cell Excel can hold: illegal control characters removed, cut at 32,767 characters."""
    if not isinstance(value, str):
        return value
    value = _XLSX_ILLEGAL.sub("", value)
    if len(value) > XLSX_CELL_CHARS:
        note = f"… [cut: {len(value):,} characters in all; export CSV or JSONL for the full text]"
        value = value[: XLSX_CELL_CHARS - len(note)] + note
    return value


def xlsx_safe(frame: pd.DataFrame) -> pd.DataFrame:
    out = neutralise_formulas(frame)
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(xlsx_cell)
    out.columns = [xlsx_cell(c) for c in out.columns]
    return out


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(neutralise_cell)
    out.columns = [neutralise_cell(str(c)) for c in out.columns]
    return out


def table_bytes(frame: pd.DataFrame, fmt: str) -> bytes:
    """The table serialised in ``fmt`` (for downloads as well as files)."""
    if fmt in ("csv", "tsv"):
        safe = neutralise_formulas(frame)
        return safe.to_csv(index=False, sep="\t" if fmt == "tsv" else ",").encode("utf-8")
    if fmt == "jsonl":
        return frame.to_json(orient="records", lines=True, force_ascii=False).encode("utf-8")
    if fmt == "json":
        return frame.to_json(orient="records", force_ascii=False, indent=1).encode("utf-8")
    import io

    buffer = io.BytesIO()
    if fmt == "parquet":
        _parquet_safe(frame).to_parquet(buffer, index=False)
    elif fmt == "xlsx":
        xlsx_safe(frame).to_excel(buffer, index=False, engine="openpyxl")
    else:
        raise CorpusmapError(f"unknown export format {fmt!r}")
    return buffer.getvalue()


def _parquet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns of mixed types become strings (Parquet needs one type per column)."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object:
            kinds = {type(v) for v in out[column].dropna()}
            if len(kinds) > 1:
                out[column] = out[column].map(lambda v: v if v is None else str(v))
    return out


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write atomically: a reader never sees half a file, and a failure leaves no file."""
    path = Path(path)
    data = table_bytes(frame, export_format(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
