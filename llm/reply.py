"""The model's reply: find the JSON object in it, validate it, turn it into a ClusterLabel.

Small local models wrap JSON in code fences or prose, and some endpoints ignore
``response_format``, so the object is looked for inside the text. Whatever fails validation
raises ``ReplyError`` with a short reason that is safe to send back in a repair prompt.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from clustering.types import ClusterLabel
from llm.prompts import NAME_MAX_WORDS

PLACEHOLDER_NAMES = frozenset(
    {
        "",
        "n/a",
        "na",
        "none",
        "null",
        "unknown",
        "untitled",
        "no label",
        "no name",
        "label",
        "name",
        "cluster",
        "cluster name",
        "topic",
        "short name",
        "a short name for the cluster",
    }
)
"""Names that are not names: a reply with one falls back to the keyword label (BERTopic showed
"No label returned" as a topic name; we never show a placeholder)."""

PLACEHOLDER_PREFIXES = ("a short name", "short name for", "name of the cluster", "cluster name")
"""Starts of names that echo the prompt's own wording (seen from SmolLM2)."""

DESCRIPTION_MAX_CHARS = 600
CRITERION_MAX_CHARS = 400
MAX_EVIDENCE = 5

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


class ReplyError(ValueError):
    """The reply holds no usable label; the message says why in a few words."""


class LabelReply(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    name: str
    description: str
    inclusion_criterion: str
    evidence: list[int] = []

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = " ".join(value.split()).strip(" .,;:\"'")
        lowered = value.lower()
        if lowered in PLACEHOLDER_NAMES or lowered.startswith(PLACEHOLDER_PREFIXES):
            raise ValueError("the name is empty or a placeholder")
        if "<" in value or ">" in value:
            # Tiny models echo the prompt's <data> tags or the corpus's HTML into the name.
            raise ValueError("the name contains markup")
        words = len(value.split())
        if words > NAME_MAX_WORDS:
            raise ValueError(f"the name has {words} words, at most {NAME_MAX_WORDS} are allowed")
        return value

    @field_validator("description", "inclusion_criterion")
    @classmethod
    def _sentence(cls, value: str) -> str:
        value = " ".join(value.split())
        if len(value) < 3 or value.startswith("<"):
            raise ValueError("it is empty or a placeholder")
        return value

    @field_validator("description")
    @classmethod
    def _description_length(cls, value: str) -> str:
        if len(value) > DESCRIPTION_MAX_CHARS:
            raise ValueError(f"it is longer than {DESCRIPTION_MAX_CHARS} characters")
        return value

    @field_validator("inclusion_criterion")
    @classmethod
    def _criterion_length(cls, value: str) -> str:
        if len(value) > CRITERION_MAX_CHARS:
            raise ValueError(f"it is longer than {CRITERION_MAX_CHARS} characters")
        return value

    @field_validator("evidence", mode="before")
    @classmethod
    def _evidence(cls, value: Any) -> list[int]:
        # Ids come back as 3, "3" or "[3]"; anything else is not evidence but not worth a retry.
        if value is None:
            return []
        if not isinstance(value, list):
            value = [value]
        ids = []
        for item in value:
            digits = re.sub(r"\D", "", str(item))
            if digits and len(digits) < 6:
                ids.append(int(digits))
        return ids


def find_json_object(text: str) -> Any:
    """The first JSON object in ``text``: plain, fenced, or with prose around it."""
    candidates = [text.strip()]
    candidates += [m.strip() for m in _FENCE.findall(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    decoder = json.JSONDecoder()
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            pass
    if start >= 0:
        try:
            obj, _ = decoder.raw_decode(text[start:])
            return obj
        except json.JSONDecodeError:
            pass
    raise ReplyError("it is not valid JSON")


def parse_label_reply(
    text: str, cluster_id: int, n_examples: int, *, labeler: str = "llm"
) -> ClusterLabel:
    """A validated label from the model's text; evidence ids (1-based) become 0-based indices
    into the cluster's representatives, ids out of range are dropped."""
    data = find_json_object(text)
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    if not isinstance(data, dict):
        raise ReplyError("it is not a JSON object")
    try:
        reply = LabelReply.model_validate(data)
    except ValidationError as err:
        raise ReplyError(describe_validation_error(err)) from err
    evidence: list[int] = []
    for i in reply.evidence:
        if 1 <= i <= n_examples and i - 1 not in evidence:
            evidence.append(i - 1)
    return ClusterLabel(
        cluster_id=cluster_id,
        name=reply.name,
        description=reply.description,
        inclusion_criterion=reply.inclusion_criterion,
        evidence=tuple(evidence[:MAX_EVIDENCE]),
        status="ok",
        labeler=labeler,
    )


def describe_validation_error(err: ValidationError) -> str:
    """Pydantic's errors in a few words, without echoing the input back."""
    parts = []
    for item in err.errors(include_input=False, include_url=False):
        where = ".".join(str(x) for x in item["loc"]) or "reply"
        if item["type"] == "missing":
            parts.append(f"{where} is missing")
        elif item["type"].endswith("_type"):
            parts.append(f"{where} has the wrong type")
        else:
            parts.append(f"{where}: {item['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts[:4])
