"""Pure clustering stages: ingest, embed, reduce, cluster, keywords, summaries, labels, metrics."""

from clustering.cached_embedding import embed_texts, text_hash
from clustering.embed import SentenceTransformerEmbedder
from clustering.errors import (
    ClusteringError,
    ColumnError,
    ConfigError,
    EmbedderError,
    EmptyCorpusError,
    IngestError,
)
from clustering.ingest import read_corpus, read_corpus_bytes
from clustering.labels import KeywordLabeler
from clustering.pipeline import PipelineConfig, run_pipeline
from clustering.types import (
    NOISE,
    Assignment,
    ClusterLabel,
    ClusterSummary,
    Corpus,
    Embedder,
    Labeler,
    RunResult,
)

__all__ = [
    "NOISE",
    "Assignment",
    "ClusterLabel",
    "ClusterSummary",
    "ClusteringError",
    "ColumnError",
    "ConfigError",
    "Corpus",
    "Embedder",
    "EmbedderError",
    "EmptyCorpusError",
    "IngestError",
    "KeywordLabeler",
    "Labeler",
    "PipelineConfig",
    "RunResult",
    "SentenceTransformerEmbedder",
    "embed_texts",
    "read_corpus",
    "read_corpus_bytes",
    "run_pipeline",
    "text_hash",
]
