"""Who is asking: the signed-in user, the workspace they act in and their role there.

A ``Store`` opened plainly serves single-user mode and checks nothing. ``store.scoped(access)``
returns the same store acting for one user in one workspace: every public method that takes a
corpus or run id then checks that the object lies in that workspace (an object of another
workspace is "not found", with the very sentence a missing one gets) and that the role allows
the action. ``StoreBase.__init_subclass__`` refuses a public store method that declares no
access rule, so a new method cannot forget the check.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from storage.errors import ForbiddenError, NotFoundError

ROLES = ("viewer", "editor", "admin")
"""Each role can do what the ones before it can: viewers read and export; editors also upload,
run and edit; admins also manage members and limits and delete."""
Need = Literal["read", "edit", "admin"]
NEEDS: dict[str, str] = {"read": "viewer", "edit": "editor", "admin": "admin"}
WHAT: dict[str, str] = {
    "read": "read",
    "edit": "upload, run or edit",
    "admin": "delete or manage members",
}
OBJECT_ID_PARAMETERS = {"corpus_id": "corpus", "run_id": "run"}
DEFAULT_WORKSPACE_ID = 1
LOCAL_ACTOR = "local"
"""The actor the audit trail names in single-user mode."""

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Access:
    """One user acting in one workspace (hashable: it keys cached display data)."""

    user_id: int
    username: str
    workspace_id: int
    workspace: str
    role: str

    def allows(self, need: Need) -> bool:
        return ROLES.index(self.role) >= ROLES.index(NEEDS[need])

    def require(self, need: Need) -> None:
        if not self.allows(need):
            raise ForbiddenError(
                f"{self.username} is a {self.role} in workspace {self.workspace!r} and cannot "
                f"{WHAT[need]}; ask one of its admins for the {NEEDS[need]} role"
            )


def missing(kind: str, object_id: int) -> NotFoundError:
    """The error for an id the caller cannot see, whether it is absent or another workspace's."""
    lister = {"corpus": "corpora", "run": "runs"}[kind]
    return NotFoundError(f"no {kind} #{object_id}; `corpusmap {lister}` lists them")


def guarded(need: Need) -> Callable[[F], F]:
    """Mark a store method taking ``corpus_id`` or ``run_id``: when the store is scoped, the
    object must lie in the caller's workspace and the role must allow ``need``."""

    def decorate(method: F) -> F:
        signature = inspect.signature(method)
        names = [p for p in signature.parameters if p in OBJECT_ID_PARAMETERS]
        if len(names) != 1:
            raise TypeError(f"@guarded {method.__qualname__} must take one corpus_id or run_id")
        name, kind = names[0], OBJECT_ID_PARAMETERS[names[0]]

        @functools.wraps(method)
        def checked(self: Any, *args: Any, **kwargs: Any) -> Any:
            if self.access is not None:
                object_id = signature.bind(self, *args, **kwargs).arguments.get(name)
                if object_id is None:
                    self.access.require(need)
                else:
                    self._check_access(kind, int(object_id), need)
            return method(self, *args, **kwargs)

        checked.__access__ = need  # type: ignore[attr-defined]
        return checked  # type: ignore[return-value]

    return decorate


def workspace_wide(need: Need) -> Callable[[F], F]:
    """Mark a store method without an object id that confines itself to the caller's workspace
    (lists, uploads, the LLM call cache): the role is checked here, the filter is its own."""

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def checked(self: Any, *args: Any, **kwargs: Any) -> Any:
            if self.access is not None:
                self.access.require(need)
            return method(self, *args, **kwargs)

        checked.__access__ = need  # type: ignore[attr-defined]
        return checked  # type: ignore[return-value]

    return decorate


def unscoped(method: F) -> F:
    """Mark a store method that holds no workspace's data (the embedding cache, keyed by a
    text's hash), or that the server's operator alone calls (user management)."""
    method.__access__ = "unscoped"  # type: ignore[attr-defined]
    return method


def check_declared(cls: type, exempt: frozenset[str]) -> None:
    """Refuse a public method of a store class that declares no access rule."""
    for name, member in vars(cls).items():
        if name.startswith("_") or name in exempt or not inspect.isfunction(member):
            continue
        if not hasattr(member, "__access__"):
            raise TypeError(
                f"{cls.__name__}.{name} declares no access rule: decorate it with "
                "storage.access.guarded, workspace_wide or unscoped"
            )
