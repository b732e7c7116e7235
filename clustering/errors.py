"""Errors of the clustering package. Each message says what went wrong and what to do."""


class ClusteringError(Exception):
    """Base of every error this package raises on purpose."""


class IngestError(ClusteringError):
    """A corpus file cannot be read as a table of texts."""


class ColumnError(IngestError):
    """The text column (or another named column) is missing or holds no text."""


class EmptyCorpusError(IngestError):
    """No row has a usable text."""


class EmbedderError(ClusteringError):
    """The embedding model cannot be loaded or run."""


class ConfigError(ClusteringError):
    """A pipeline parameter is out of range."""


class ConstraintError(ClusteringError):
    """Seeds and pairs contradict each other or point outside the corpus."""
