"""What every ``corpusmap`` command shares: errors turned into one line and status 2, the
``--db`` option, and progress lines on stderr. The commands live in ``corpusmap.cli`` and the
modules it registers (``cli_edit``, ``cli_lens``), which all import from here."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import click

from clustering import ClusteringError
from corpusmap.errors import CorpusmapError
from storage import StorageError

EXPECTED_ERRORS: tuple[type[Exception], ...] = (ClusteringError, StorageError, CorpusmapError)
try:  # the LLM package adds its own errors
    from llm import LLMError

    EXPECTED_ERRORS = (*EXPECTED_ERRORS, LLMError)
except ImportError:  # pragma: no cover
    pass


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except EXPECTED_ERRORS as err:
            _fail(str(err))
        except KeyboardInterrupt:
            _fail("interrupted; the run is stored as far as it got (see `corpusmap runs`)")

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


db_option = click.option(
    "--db",
    "db",
    default=None,
    help="SQLAlchemy URL or SQLite file (default: $CORPUSMAP_DATABASE_URL or ~/.corpusmap/corpusmap.db).",
)


class StderrProgress:
    """One line per stage change or every few seconds, on stderr."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.start = time.perf_counter()
        self.last_stage = ""
        self.last_time = 0.0

    def __call__(self, stage: str, fraction: float, message: str) -> None:
        now = time.perf_counter()
        if self.quiet or (stage == self.last_stage and now - self.last_time < 2 and fraction < 1):
            return
        self.last_stage, self.last_time = stage, now
        click.echo(f"[{now - self.start:6.1f}s] {stage:<9} {message}", err=True)
