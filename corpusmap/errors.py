"""Errors of the application layer."""


class CorpusmapError(Exception):
    """A request the service cannot carry out; the message says what to do instead."""
