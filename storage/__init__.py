"""Persistence through SQLAlchemy: SQLite by default, any SQLAlchemy URL."""

from storage.engine import data_home, database_url, default_database_url, redact
from storage.errors import NotFoundError, StorageError
from storage.files import UnsafeFilenameError, safe_filename, safe_upload_path
from storage.repository import ClusterInfo, CorpusInfo, EditInfo, LLMCallRecord, RunInfo, Store

__all__ = [
    "ClusterInfo",
    "CorpusInfo",
    "EditInfo",
    "LLMCallRecord",
    "NotFoundError",
    "RunInfo",
    "StorageError",
    "Store",
    "UnsafeFilenameError",
    "data_home",
    "database_url",
    "default_database_url",
    "redact",
    "safe_filename",
    "safe_upload_path",
]
