"""What every ``corpusmap`` command shares: errors turned into one line and status 2, the
``--db`` option, the global ``--user`` / ``--workspace`` options and the one place a command
opens its store with them (``open_store``), and progress lines on stderr. The commands live in
``corpusmap.cli`` and the modules it registers (``cli_edit``, ``cli_lens``, ``cli_team``), which
all import from here."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import click

from clustering import ClusteringError
from corpusmap import api
from corpusmap.api import USER_ENV, WORKSPACE_ENV
from corpusmap.errors import CorpusmapError
from storage import StorageError, Store

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


_USER_KEY = "corpusmap.user"
_WORKSPACE_KEY = "corpusmap.workspace"


def acting_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--user`` and ``--workspace`` for the ``corpusmap`` group: kept in the click context's
    ``meta`` (shared by every subcommand) for ``open_store``, and not passed to the group."""

    def remember(key: str) -> Callable[[click.Context, click.Parameter, Any], None]:
        def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
            ctx.meta[key] = value or None

        return callback

    func = click.option(
        "--workspace",
        envvar=WORKSPACE_ENV,
        default=None,
        expose_value=False,
        callback=remember(_WORKSPACE_KEY),
        help=f"Team mode: the workspace to act in, if the user belongs to several (${WORKSPACE_ENV}).",
    )(func)
    return click.option(
        "--user",
        envvar=USER_ENV,
        default=None,
        expose_value=False,
        callback=remember(_USER_KEY),
        help=f"Team mode: act as this user, with their role in the workspace (${USER_ENV}).",
    )(func)


def open_store(db: str | None) -> Store:
    """The store a command works on (``api.open_store``): in team mode acting as the ``--user``
    named (refused if none is), in single-user mode the plain store (refused if one is named).

    Every command that reads or changes corpora and runs opens its store here, so none can
    forget the user. The operator's commands (``users``, ``workspaces``) use ``Store.open``."""
    ctx = click.get_current_context(silent=True)
    meta = ctx.meta if ctx is not None else {}
    return api.open_store(db, user=meta.get(_USER_KEY), workspace=meta.get(_WORKSPACE_KEY))


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
