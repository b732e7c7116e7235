"""Where uploaded files are saved: always inside the data directory, whatever their name says."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path

from storage.errors import StorageError

MAX_NAME_CHARS = 120
"""Kept well under the 255 bytes most file systems allow, with room for a suffix."""
_UNSAFE = re.compile(r"[^\w.\- ]+", re.UNICODE)
_RESERVED = {"", ".", ".."}


class UnsafeFilenameError(StorageError):
    """An uploaded file name that cannot be turned into a safe one (nothing usable is left)."""


def safe_filename(filename: str) -> str:
    """The last component of ``filename``, without separators, NULs, control characters or a
    leading dot, cut to ``MAX_NAME_CHARS`` (keeping the extension, with a hash of the full name
    so two long names stay distinct)."""
    if not isinstance(filename, str):
        raise UnsafeFilenameError(f"a file name must be text, got {type(filename).__name__}")
    name = unicodedata.normalize("NFC", filename.replace("\x00", ""))
    # Both separators, whatever the server's OS: "..\\..\\x" from a Windows browser too.
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = _UNSAFE.sub("_", name).strip(" .")
    if name in _RESERVED:
        raise UnsafeFilenameError(
            f"the file name {filename[:80]!r} has no usable characters; rename the file "
            "(letters, digits, dots, dashes) and upload it again"
        )
    if len(name) > MAX_NAME_CHARS:
        digest = hashlib.sha256(filename.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        suffixes = "".join(Path(name).suffixes)[-20:]
        stem = name[: MAX_NAME_CHARS - len(suffixes) - 13]
        name = f"{stem}-{digest}{suffixes}"
    return name


def safe_upload_path(data_dir: str | Path, filename: str) -> Path:
    """The path under ``data_dir/uploads`` where an upload called ``filename`` is saved.

    The result is always inside that folder: ``../../etc/passwd`` becomes ``passwd``, an
    absolute path keeps only its last part, and a NUL or very long name is cleaned up.
    """
    folder = (Path(data_dir).expanduser() / "uploads").resolve()
    path = (folder / safe_filename(filename)).resolve()
    if path.parent != folder:  # pragma: no cover - safe_filename leaves no separator
        raise UnsafeFilenameError(f"refusing to write {filename[:80]!r} outside {folder}")
    return path
