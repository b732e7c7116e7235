"""Errors of the application layer."""


class CorpusmapError(Exception):
    """A request the service cannot carry out; the message says what to do instead."""


class RequestError(CorpusmapError):
    """Settings of a run that cannot work together; the message says what to change."""
