"""Team mode's settings, the start-up checks that refuse an unsafe server, and the one way the
CLI, the API and the app turn "this user, this workspace" into a scoped store.

Settings come from the environment, else from the ``[corpusmap]`` table of Streamlit's
``secrets.toml`` (``.streamlit/secrets.toml`` beside the app, or ``~/.streamlit/``):

========================  ==============================  ========================================
environment               secrets.toml ``[corpusmap]``    meaning
========================  ==============================  ========================================
CORPUSMAP_TEAM            ``team = true``                 sign-in, workspaces, roles, limits
CORPUSMAP_SIGN_IN         ``sign_in = "oidc"|"builtin"``  how people sign in (default: oidc when
                                                          an ``[auth]`` table is present)
CORPUSMAP_SESSION_HOURS   ``session_hours = 12``          built-in sign-ins expire after this
CORPUSMAP_ALLOW_REMOTE    ``allow_remote = true``         serve single-user mode beyond loopback
CORPUSMAP_USER            (CLI/API only)                  the user the CLI and API act as
CORPUSMAP_WORKSPACE       (CLI/API only)                  ... in this workspace
========================  ==============================  ========================================

OpenID Connect itself is Streamlit's ``[auth]`` table (``st.login``): ``redirect_uri``,
``cookie_secret`` and ``client_id``, ``client_secret``, ``server_metadata_url`` (or one
``[auth.<provider>]`` table, named by ``oidc_provider``).
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corpusmap.errors import CorpusmapError
from storage import Store
from storage.access import Access

SIGN_IN_WAYS = ("oidc", "builtin")
DEFAULT_SESSION_HOURS = 12.0
TRUE = {"1", "true", "yes", "on"}


class TeamSetupError(CorpusmapError):
    """Team mode is asked for but cannot be served safely as configured."""


def secrets_files(cwd: Path | None = None) -> list[Path]:
    """Where Streamlit reads ``secrets.toml`` from, in its order (later wins)."""
    return [
        Path.home() / ".streamlit" / "secrets.toml",
        (cwd or Path.cwd()) / ".streamlit" / "secrets.toml",
    ]


def read_secrets(cwd: Path | None = None) -> dict[str, Any]:
    """The merged ``secrets.toml`` tables, for the CLI (the app passes ``st.secrets``)."""
    merged: dict[str, Any] = {}
    for path in secrets_files(cwd):
        if path.is_file():
            with path.open("rb") as handle:
                merged.update(tomllib.load(handle))
    return merged


def _flag(value: Any) -> bool:
    return value is True or str(value).strip().lower() in TRUE


@dataclass(frozen=True)
class TeamSettings:
    team: bool = False
    sign_in: str = ""
    """``oidc`` or ``builtin`` in team mode; "" in single-user mode."""
    session_hours: float = DEFAULT_SESSION_HOURS
    allow_remote: bool = False
    oidc_provider: str = ""
    """The ``[auth.<name>]`` provider ``st.login`` uses; "" for the plain ``[auth]`` table."""
    oidc_configured: bool = False

    @classmethod
    def load(
        cls, secrets: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> TeamSettings:
        environ = os.environ if environ is None else environ
        secrets = read_secrets() if secrets is None else secrets
        table = dict(secrets.get("corpusmap", {}) or {})
        auth = dict(secrets.get("auth", {}) or {})

        def pick(env: str, key: str, default: Any = None) -> Any:
            return environ[env] if environ.get(env) else table.get(key, default)

        team = _flag(pick("CORPUSMAP_TEAM", "team", False))
        provider = str(table.get("oidc_provider", "") or "")
        providers = {k for k, v in auth.items() if isinstance(v, Mapping)}
        oidc_configured = bool(auth.get("redirect_uri")) and bool(
            auth.get("client_id") or (provider in providers if provider else providers)
        )
        sign_in = str(pick("CORPUSMAP_SIGN_IN", "sign_in", "") or "").strip().lower()
        if team and not sign_in and oidc_configured:
            sign_in = "oidc"
        try:
            hours = float(pick("CORPUSMAP_SESSION_HOURS", "session_hours", DEFAULT_SESSION_HOURS))
        except ValueError as err:
            raise TeamSetupError(f"session_hours must be a number of hours ({err})") from err
        if not provider and not auth.get("client_id") and len(providers) == 1:
            provider = next(iter(providers))
        return cls(
            team=team,
            sign_in=sign_in if team else "",
            session_hours=hours,
            allow_remote=_flag(pick("CORPUSMAP_ALLOW_REMOTE", "allow_remote", False)),
            oidc_provider=provider,
            oidc_configured=oidc_configured,
        )

    def check_startup(self, address: str | None, store: Store | None = None) -> None:
        """Refuse to serve what would be unsafe: team mode with no way to sign in, or
        single-user mode (no sign-in) reachable beyond this machine unless asked for."""
        if not self.team:
            if not is_loopback(address) and not self.allow_remote:
                raise TeamSetupError(
                    f"corpusmap is in single-user mode (no sign-in) and would listen on "
                    f"{address or 'every network interface'}: anyone who reaches the port could "
                    "read and delete every corpus. Serve it on 127.0.0.1 (the default in "
                    ".streamlit/config.toml), turn team mode on (CORPUSMAP_TEAM=1, see the "
                    "README's 'Serving corpusmap to a team'), or set CORPUSMAP_ALLOW_REMOTE=1 "
                    "if you mean to serve it without sign-in"
                )
            return
        if self.session_hours <= 0:
            raise TeamSetupError("session_hours must be above 0")
        if self.sign_in not in SIGN_IN_WAYS:
            raise TeamSetupError(
                "team mode is on but no way to sign in is configured: add an [auth] table for "
                'OpenID Connect to .streamlit/secrets.toml, or set sign_in = "builtin" '
                "(CORPUSMAP_SIGN_IN=builtin) and create an admin with `corpusmap users add "
                "NAME --admin`"
                + (
                    f" (sign_in {self.sign_in!r} is neither oidc nor builtin)"
                    if self.sign_in
                    else ""
                )
            )
        if self.sign_in == "oidc" and not self.oidc_configured:
            raise TeamSetupError(
                "sign_in is oidc but .streamlit/secrets.toml has no complete [auth] table: it "
                "needs redirect_uri, cookie_secret, client_id, client_secret and "
                "server_metadata_url (Streamlit's st.login)"
            )
        if self.sign_in == "builtin" and store is not None:
            if not any(u.has_password and not u.disabled for u in store.list_users()):
                raise TeamSetupError(
                    "sign_in is builtin but no enabled account with a password exists: create "
                    "the first admin with `corpusmap users add NAME --admin`"
                )


def is_loopback(address: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost; False for all interfaces ("" / 0.0.0.0)."""
    if not address:
        return False
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def scoped_store(
    store: Store,
    settings: TeamSettings,
    username: str | None,
    workspace: str | None = None,
) -> Store:
    """The store acting as ``username`` in ``workspace`` in team mode; the plain store in
    single-user mode, where naming a user is refused rather than ignored."""
    if not settings.team:
        if username or workspace:
            raise TeamSetupError(
                "a user or workspace was named but team mode is off: turn it on "
                "(CORPUSMAP_TEAM=1) or leave --user/--workspace out"
            )
        return store
    if not username:
        raise TeamSetupError(
            "team mode is on: name the user to act as (--user or CORPUSMAP_USER) and, if they "
            "belong to several workspaces, the workspace (--workspace or CORPUSMAP_WORKSPACE)"
        )
    access: Access = store.access_for(username, workspace)
    return store.scoped(access)
