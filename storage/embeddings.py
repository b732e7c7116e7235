"""The embedding cache: vectors by (model, text hash), shared by every workspace.

A vector is keyed by the hash of its text, so it tells nothing a caller does not already hold
(the text itself); a run in any workspace reuses it and never embeds the same text twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import func, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from storage.access import unscoped
from storage.models import EmbeddingRow
from storage.records import IN_CHUNK, INSERT_CHUNK, _chunks
from storage.session import StoreBase


class EmbeddingStore(StoreBase):
    """``Store``'s methods for the embedding cache."""

    @unscoped
    def get_embeddings(self, model_id: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        with self._tx() as session:
            for chunk in _chunks(list(hashes), IN_CHUNK):
                rows = session.execute(
                    select(EmbeddingRow.text_hash, EmbeddingRow.vector).where(
                        EmbeddingRow.model_id == model_id, EmbeddingRow.text_hash.in_(chunk)
                    )
                ).all()
                for h, blob in rows:
                    found[h] = np.frombuffer(blob, dtype="<f4")
        return found

    @unscoped
    def put_embeddings(self, model_id: str, items: dict[str, np.ndarray]) -> None:
        rows = [
            {
                "model_id": model_id,
                "text_hash": h,
                "dim": int(v.shape[0]),
                "vector": np.asarray(v, dtype="<f4").tobytes(),
            }
            for h, v in items.items()
        ]
        with self._tx() as session:
            for chunk in _chunks(rows, INSERT_CHUNK):
                session.execute(self._insert_ignoring_duplicates(EmbeddingRow), list(chunk))

    def _insert_ignoring_duplicates(self, model: type) -> Any:
        # Two processes may embed the same text at once; the second write is a no-op.
        if self.dialect == "postgresql":
            return postgresql.insert(model).on_conflict_do_nothing()
        if self.dialect == "sqlite":
            return sqlite.insert(model).on_conflict_do_nothing()
        return insert(model).prefix_with("IGNORE")

    @unscoped
    def count_embeddings(self, model_id: str | None = None) -> int:
        with self._tx() as session:
            query = select(func.count()).select_from(EmbeddingRow)
            if model_id is not None:
                query = query.where(EmbeddingRow.model_id == model_id)
            return int(session.scalar(query) or 0)
