"""Where the LLM is and how to talk to it: endpoint, key, model, limits and a price table.

Read from the environment (``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, ``CORPUSMAP_LLM_MODEL`` and
the ``CORPUSMAP_LLM_*`` tunables below); the CLI and the app pass their flags and secrets as
overrides. The key never shows in ``repr``/``str``, logs or stored requests.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from llm.errors import LLMConfigError

DEFAULT_MODEL = "gpt-4o-mini"
OPENAI_BASE_URL = "https://api.openai.com/v1"

DEFAULT_PRICES: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        # USD per 1M (input, output) tokens, from openai.com/api/pricing (2025); local models
        # cost nothing. A model missing here is priced at 0 and flagged in LLMUsage.unpriced.
        "gpt-4o-mini": (0.15, 0.60),
        "gpt-4o": (2.50, 10.00),
        "gpt-4.1": (2.00, 8.00),
        "gpt-4.1-mini": (0.40, 1.60),
        "gpt-4.1-nano": (0.10, 0.40),
        "gpt-5-mini": (0.25, 2.00),
        "gpt-5-nano": (0.05, 0.40),
        "smollm2": (0.0, 0.0),
    }
)

ENV_BASE_URL = "OPENAI_BASE_URL"
ENV_API_KEY = "OPENAI_API_KEY"
ENV_MODEL = "CORPUSMAP_LLM_MODEL"
ENV_TUNABLES: Mapping[str, tuple[str, type]] = MappingProxyType(
    {
        "temperature": ("CORPUSMAP_LLM_TEMPERATURE", float),
        "timeout_s": ("CORPUSMAP_LLM_TIMEOUT", float),
        "max_in_flight": ("CORPUSMAP_LLM_MAX_IN_FLIGHT", int),
        "max_retries": ("CORPUSMAP_LLM_MAX_RETRIES", int),
        "max_tokens": ("CORPUSMAP_LLM_MAX_TOKENS", int),
    }
)


@dataclass(frozen=True)
class LLMSettings:
    base_url: str | None = None
    """An OpenAI-compatible endpoint such as ``http://127.0.0.1:8080/v1``; ``None`` is OpenAI."""
    api_key: str | None = field(default=None, repr=False)
    model: str = DEFAULT_MODEL
    temperature: float = 0.0
    timeout_s: float = 60.0
    """Per request; a reply slower than this is retried like a 5xx."""
    max_in_flight: int = 4
    """Requests sent at the same time (one worker thread each)."""
    max_retries: int = 3
    """Retries of one request on 408/409/429/5xx, time-outs and refused connections, with the
    SDK's exponential backoff (0.5 s doubling, at most 8 s) or the server's Retry-After."""
    max_tokens: int | None = 512
    """Cap on the reply's length; ``None`` sends no cap."""
    structured_output: bool = True
    """Ask for a JSON schema through ``response_format`` (dropped per endpoint on a 400)."""
    prices: Mapping[str, tuple[float, float]] = field(
        default_factory=lambda: DEFAULT_PRICES, hash=False, repr=False
    )
    """USD per 1M (input, output) tokens by model name."""

    def __post_init__(self) -> None:
        # A frozen value must not share a dict the caller can still change.
        object.__setattr__(self, "prices", MappingProxyType(dict(self.prices)))

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ, **overrides: Any) -> LLMSettings:
        """Settings from environment variables; ``overrides`` that are ``None`` are ignored."""
        values: dict[str, Any] = {}
        if env.get(ENV_BASE_URL):
            values["base_url"] = env[ENV_BASE_URL]
        if env.get(ENV_API_KEY):
            values["api_key"] = env[ENV_API_KEY]
        if env.get(ENV_MODEL):
            values["model"] = env[ENV_MODEL]
        for name, (var, kind) in ENV_TUNABLES.items():
            raw = env.get(var)
            if raw:
                try:
                    values[name] = kind(raw)
                except ValueError as err:
                    raise LLMConfigError(
                        f"{var}={raw!r} is not a valid {kind.__name__}; unset it or fix it"
                    ) from err
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise LLMConfigError(f"unknown LLM settings {sorted(unknown)}; known: {sorted(known)}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.validate()
        return settings

    def with_overrides(self, **overrides: Any) -> LLMSettings:
        """A copy with the non-``None`` overrides applied."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def validate(self) -> None:
        if not self.model:
            raise LLMConfigError(f"no LLM model named; set {ENV_MODEL} or pass a model")
        if self.timeout_s <= 0:
            raise LLMConfigError(f"timeout_s must be positive, got {self.timeout_s}")
        if self.max_in_flight < 1:
            raise LLMConfigError(f"max_in_flight must be at least 1, got {self.max_in_flight}")
        if self.max_retries < 0:
            raise LLMConfigError(f"max_retries must be 0 or more, got {self.max_retries}")
        if not 0.0 <= self.temperature <= 2.0:
            raise LLMConfigError(f"temperature must be in [0, 2], got {self.temperature}")
        if self.max_tokens is not None and self.max_tokens < 16:
            raise LLMConfigError(f"max_tokens must be at least 16, got {self.max_tokens}")
        if self.base_url is not None and urlsplit(self.base_url).scheme not in ("http", "https"):
            raise LLMConfigError(
                f"base_url must start with http:// or https://, got {self.public_base_url!r}"
            )

    @property
    def configured(self) -> bool:
        """True when an endpoint or a key is set, so an LLM can be asked at all."""
        return bool(self.base_url or self.api_key)

    @property
    def endpoint(self) -> str:
        return self.base_url or OPENAI_BASE_URL

    @property
    def public_base_url(self) -> str:
        """The endpoint without any user:password part, safe to log and store."""
        parts = urlsplit(self.endpoint)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))

    def price_of(self, model: str | None = None) -> tuple[float, float] | None:
        """USD per 1M (input, output) tokens, or ``None`` if the model is not in the table.

        A dated snapshot (``gpt-4o-mini-2024-07-18``) takes its family's price.
        """
        name = model or self.model
        if name in self.prices:
            return self.prices[name]
        family = max((m for m in self.prices if name.startswith(m + "-")), key=len, default=None)
        return self.prices[family] if family else None

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        price = self.price_of()
        if price is None:
            return 0.0
        return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000
