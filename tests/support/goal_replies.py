"""Replies of a scripted "oracle" LLM for the goal-driven prompts (llm/goal_prompts.py).

It knows the gold label of every text of a test corpus, so its proposals, yes/no checks,
classifications, pairwise answers and keyphrases are right: a test can then tell whether the
mode used the answers (the result gets close to the gold labels) or dropped them. Plug it into
``ScriptedOpenAIServer(default=oracle)``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from tests.support.openai_server import Reply

PREFIX = 120


def _key(text: str) -> str:
    return " ".join(text.split())[:PREFIX].rstrip("…").strip()


def _data(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    for message in body.get("messages", []):
        if message.get("role") != "user":
            continue
        content = message.get("content") or ""
        match = re.search(r"<data>\n(.*?)\n</data>", content, re.DOTALL)
        if match:
            return content[: match.start()], json.loads(match.group(1))
    return "", {}


class GoalOracle:
    """A ``Responder``: callable on a request body, returns a ``Reply``."""

    def __init__(self, truth: Mapping[str, str], names: Mapping[str, str] | None = None) -> None:
        self.truth = {_key(t): label for t, label in truth.items()}
        self.names = dict(names or {})
        """Gold label -> the group name the oracle proposes (default: the label itself)."""
        self.kinds: list[str] = []

    def label_of(self, text: str) -> str | None:
        key = _key(text)
        if key in self.truth:
            return self.truth[key]
        for k, v in self.truth.items():  # a cut text: match on the shorter prefix
            if k.startswith(key[: PREFIX // 2]) or key.startswith(k[: PREFIX // 2]):
                return v
        return None

    def name(self, label: str) -> str:
        return self.names.get(label, label)

    def label_of_name(self, text: str) -> str | None:
        text = text.lower()
        found = [lab for lab in set(self.truth.values()) if self.name(lab).lower() in text]
        # The longest name that fits: "card payment fee" over "card payment".
        return max(found, key=lambda lab: len(self.name(lab)), default=None)

    def keyphrases(self, label: str | None) -> list[str]:
        """What the oracle answers a keyphrase request with: its group's name, twice worded."""
        if label is None:
            return []
        name = self.name(label).lower()
        return [name, f"{name} news"]

    def __call__(self, body: dict[str, Any]) -> Reply:
        task, data = _data(body)
        if "Propose up to" in task:
            self.kinds.append("propose")
            labels = {self.label_of(t["text"]) for t in data.get("texts", [])} - {None}
            groups = [
                {"name": self.name(lab), "description": f"The text is about {self.name(lab)}."}
                for lab in sorted(labels)
            ]
            return Reply.text(json.dumps({"groups": groups}))
        if "Property:" in task:
            self.kinds.append("check")
            prop = re.search(r'Property: "(.*)"', task)
            wanted = self.label_of_name(prop.group(1)) if prop else None
            yes = [t["id"] for t in data.get("texts", []) if self.label_of(t["text"]) == wanted]
            return Reply.text(json.dumps({"yes": yes}))
        if "Categories:" in task:
            self.kinds.append("classify")
            lines = re.findall(r"^(\d+)\. (.*?):", task, re.MULTILINE)
            number = {}
            for n, name in lines:
                lab = self.label_of_name(name)
                if lab is not None:
                    number.setdefault(lab, int(n))
            out = [
                {"id": t["id"], "category": number.get(self.label_of(t["text"]) or "", 0)}
                for t in data.get("texts", [])
            ]
            return Reply.text(json.dumps({"assignments": out}))
        if "Merge duplicates" in task:
            self.kinds.append("merge")
            names = {self.label_of_name(c["name"]) for c in data.get("candidates", [])} - {None}
            cats = [
                {"name": self.name(lab), "description": f"The text is about {self.name(lab)}."}
                for lab in sorted(names)
            ]
            return Reply.text(json.dumps({"categories": cats}))
        if '"keyphrases"' in task:
            self.kinds.append("keyphrases")
            items = [
                {"id": t["id"], "keyphrases": self.keyphrases(self.label_of(t["text"]))}
                for t in data.get("texts", [])
            ]
            return Reply.text(json.dumps({"items": items}))
        if "pairs of texts" in task:
            self.kinds.append("pairs")
            same = [
                p["id"]
                for p in data.get("pairs", [])
                if self.label_of(p["a"]) is not None
                and self.label_of(p["a"]) == self.label_of(p["b"])
            ]
            return Reply.text(json.dumps({"same": same}))
        self.kinds.append("other")
        return Reply.text("{}")
