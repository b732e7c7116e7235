"""Errors of the storage package."""


class StorageError(Exception):
    """Base of every error this package raises on purpose."""


class NotFoundError(StorageError):
    """A corpus, run or cluster id that the database does not hold."""
