"""Errors of the storage package."""


class StorageError(Exception):
    """Base of every error this package raises on purpose."""


class NotFoundError(StorageError):
    """A corpus, run or cluster id that the database does not hold."""


class ForbiddenError(StorageError):
    """The signed-in user's role in the workspace does not allow the action."""


class QuotaError(StorageError):
    """The workspace's storage quota or daily LLM call budget would be exceeded."""
