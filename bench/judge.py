"""A simulated LLM of known accuracy: an OpenAI-compatible loopback server that answers
corpusmap's own prompts from gold labels (issue 18).

No capable model is reachable from the benchmark machines, so the value of the LLM modes is
measured with judges whose accuracy is known. ``SimulatedJudge`` is given the gold label of
every text (and the texts' vectors, for confusable classes) and serves ``/v1/chat/completions``
on 127.0.0.1 (port 0, a thread: ``with SimulatedJudge(...) as judge:`` then point corpusmap at
``judge.base_url``).

How it answers. corpusmap keeps corpus text only in the ``<data>`` part of its prompts
(``llm.prompts``, ``llm.goal_prompts``); the judge reads that part, finds the texts in it (cut
texts by their prefix) and looks up their gold labels: it uses no label of a text that is not
in the prompt. A prompt whose data part holds no known text (nor a category name the judge gave
earlier, for the merge prompt) is refused with HTTP 400, so a change that stops sending texts
fails loudly. Each text is *perceived* as its gold class with probability ``p`` and otherwise
as its confusable class (the nearest other class by centroid of the vectors, not a uniform
one); every answer follows from what is perceived:

- propose: the names of the most frequent perceived classes of the batch (the gold label
  names, ``_`` as spaces), each with the description "The text is about <name>.";
- check: "yes" for the texts perceived as the class the property names;
- classify: the category of the perceived class (where several stand for it, the first one
  named for it, not one found by embedding: a model picks "card arrival" over a keyword name
  such as "Card · Arrive"); where no category is that class, the category whose class centroid
  is nearest to it (a plausible choice, as a model's would be);
- merge: the candidates grouped by their class, the most proposed first, at most K;
- pairs: "same" where the two texts are perceived as one class;
- keyphrases: the perceived class's name;
- a cluster label (``llm.labeler``): the perceived majority class of the examples (one draw
  per cluster), its evidence the examples of that class.

Draws are seeded by ``random_state`` and the question (its kind, the text, the property or
the categories), so answers do not depend on the order of concurrent requests, and the same
question gets the same answer. Properties and categories the judge did not write itself are
mapped to a class by name, else by ``embed`` (nearest class centroid) when one is given.
Every call is recorded (``records``) with its tokens (4 characters a token).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

CHARS_PER_TOKEN = 4
ELLIPSIS = "…"
MODEL = "simulated-judge"
DATA_PART = re.compile(r"<data>\n(.*)\n</data>", re.DOTALL)

# Each kind of prompt by a phrase of its task (llm.goal_prompts, llm.prompts): a prompt the
# judge does not recognise is refused, so a reworded task shows up in the tests.
KINDS = (
    ("propose", "Propose up to"),
    ("check", "decide whether the property holds"),
    ("classify", "into the one numbered category"),
    ("merge", "Merge duplicates"),
    ("pairs", "numbered pairs of texts"),
    ("keyphrases", "keyphrases"),
    ("label", "Describe the cluster of texts"),
)


class JudgeRefusal(Exception):
    """The prompt cannot be answered honestly (HTTP 400 with this message)."""


@dataclass(frozen=True)
class JudgeCall:
    kind: str
    prompt_tokens: int
    completion_tokens: int
    texts: int
    """Texts (or pairs' texts, or candidates) in the data part."""
    known: int
    """Of which the judge knew the gold label."""
    status: int = 200


def human(label: str) -> str:
    """A gold label as a name: ``card_arrival`` → ``card arrival``."""
    return " ".join(str(label).replace("_", " ").split())


def _key(text: str) -> str:
    return " ".join(str(text).split())


class SimulatedJudge:
    """See the module docstring. ``texts``, ``labels`` and ``vectors`` are aligned; ``p`` is the
    probability of perceiving a text's gold class; ``embed`` maps texts to vectors in the same
    space (for properties and categories the judge did not write)."""

    def __init__(
        self,
        texts: Sequence[str],
        labels: Sequence[Any],
        vectors: np.ndarray,
        p: float,
        *,
        random_state: int = 0,
        embed: Callable[[list[str]], np.ndarray] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        if len(texts) != len(labels) or len(texts) != len(vectors):
            raise ValueError("texts, labels and vectors must be aligned")
        self.p = float(p)
        self.random_state = int(random_state)
        self.embed = embed
        labels = [str(lab) for lab in labels]
        self.classes = sorted(set(labels))
        index = {c: i for i, c in enumerate(self.classes)}
        y = np.asarray([index[lab] for lab in labels])
        X = np.asarray(vectors, dtype=np.float32)
        centroids = np.vstack([X[y == i].mean(axis=0) for i in range(len(self.classes))])
        self.centroids = centroids / np.maximum(
            np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12
        )
        sims = self.centroids @ self.centroids.T
        np.fill_diagonal(sims, -np.inf)
        self.class_similarity = sims
        self.confusable = {
            self.classes[i]: self.classes[int(np.argmax(sims[i]))] if len(self.classes) > 1 else c
            for i, c in enumerate(self.classes)
        }
        by_text: dict[str, Counter[str]] = {}
        for text, lab in zip(texts, labels, strict=True):
            by_text.setdefault(_key(text), Counter())[lab] += 1
        self._gold = {k: votes.most_common(1)[0][0] for k, votes in by_text.items()}
        self._sorted_keys = sorted(self._gold)
        self._by_name = {human(c).lower(): c for c in self.classes}
        self._issued: dict[str, str] = {}
        """Names and descriptions the judge wrote (lower case) → their class."""
        self.records: list[JudgeCall] = []
        self._lock = threading.Lock()
        self._embed_lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # --- server ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> SimulatedJudge:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def __enter__(self) -> SimulatedJudge:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def overrides(self, **extra: Any) -> dict[str, Any]:
        """``llm_overrides`` for ``corpusmap.api.run`` that use this judge."""
        return {"base_url": self.base_url, "model": self.model, "api_key": "judge", **extra}

    @property
    def model(self) -> str:
        """The model name: with ``p`` and the seed, so a call store never answers one judge's
        question with another's answer (the model is part of every cache key)."""
        return f"{MODEL}-p{self.p:g}-s{self.random_state}"

    # --- usage ----------------------------------------------------------------------------

    @property
    def calls(self) -> int:
        with self._lock:
            return sum(1 for r in self.records if r.status == 200)

    @property
    def refused(self) -> int:
        with self._lock:
            return sum(1 for r in self.records if r.status != 200)

    @property
    def tokens(self) -> int:
        with self._lock:
            return sum(r.prompt_tokens + r.completion_tokens for r in self.records)

    def usage(self) -> dict[str, Any]:
        with self._lock:
            records = list(self.records)
        by_kind = Counter(r.kind for r in records if r.status == 200)
        return {
            "calls": sum(by_kind.values()),
            "refused": sum(1 for r in records if r.status != 200),
            "prompt_tokens": sum(r.prompt_tokens for r in records),
            "completion_tokens": sum(r.completion_tokens for r in records),
            "by_kind": dict(by_kind),
        }

    # --- gold and perception --------------------------------------------------------------

    def gold_of(self, text: str) -> str | None:
        """The gold class of a text as it appears in a prompt (whole, or cut with "…")."""
        key = _key(text)
        found = self._gold.get(key)
        if found is not None or not key.endswith(ELLIPSIS):
            return found
        prefix = key[: -len(ELLIPSIS)].rstrip()
        if len(prefix) < 8:
            return None
        votes: Counter[str] = Counter()
        at = bisect.bisect_left(self._sorted_keys, prefix)
        while at < len(self._sorted_keys) and self._sorted_keys[at].startswith(prefix):
            votes[self._gold[self._sorted_keys[at]]] += 1
            at += 1
            if sum(votes.values()) >= 20:
                break
        return votes.most_common(1)[0][0] if votes else None

    def _draw(self, *key: Any) -> float:
        digest = hashlib.sha256(repr((self.random_state, *key)).encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def perceive(self, gold: str, *key: Any) -> str:
        """``gold`` with probability ``p``, else its confusable class."""
        return gold if self._draw(*key) < self.p else self.confusable[gold]

    def class_of(self, name: str, description: str = "") -> str | None:
        """The class a property or category stands for: one the judge wrote, a class name in it,
        else the nearest centroid to its embedding (with ``embed``)."""
        return self._class_and_how(name, description)[0]

    def _class_and_how(self, name: str, description: str = "") -> tuple[str | None, bool]:
        """``class_of`` and whether the class was found by name (written by the judge or named
        in the text) rather than by embedding."""
        for text in (name, description):
            found = self._issued.get(_key(text).lower())
            if found:
                return found, True
        lowered = _key(f"{name} {description}").lower()
        named = [c for h, c in self._by_name.items() if re.search(rf"\b{re.escape(h)}\b", lowered)]
        if named:
            return max(named, key=lambda c: len(human(c))), True
        if self.embed is None:
            return None, False
        with self._embed_lock:  # requests come on several threads; an encoder need not be
            # thread-safe (OpenVINO's infer request raised "Infer Request is busy")
            vector = self.embed([f"{name}: {description}".strip(": ")])
        vector = np.asarray(vector, np.float32)[0]
        return self.classes[int(np.argmax(self.centroids @ vector))], False

    def _issue(self, c: str) -> dict[str, str]:
        name = human(c)
        description = f"The text is about {name.lower()}."
        with self._lock:
            self._issued[name.lower()] = c
            self._issued[description.lower()] = c
        return {"name": name, "description": description}

    # --- answers --------------------------------------------------------------------------

    def answer(self, body: dict[str, Any]) -> tuple[dict[str, Any], JudgeCall]:
        """The reply's JSON and the call's record; raises ``JudgeRefusal``."""
        messages = body.get("messages") or []
        user = next(
            (
                str(m.get("content") or "")
                for m in messages
                if m.get("role") == "user" and "<data>" in str(m.get("content") or "")
            ),
            "",
        )
        match = DATA_PART.search(user)
        if not match:
            raise JudgeRefusal("the prompt has no <data> part")
        task = user[: match.start()]
        try:
            data = json.loads(match.group(1))
        except json.JSONDecodeError as err:
            raise JudgeRefusal(f"the data part is not JSON: {err}") from err
        kind = next((k for k, phrase in KINDS if phrase in task), None)
        if kind is None:
            raise JudgeRefusal("the judge does not know this task")
        reply, n_texts, n_known = getattr(self, f"_{kind}")(task, data)
        if n_known == 0:
            raise JudgeRefusal(f"no text of the data part ({n_texts}) has a known gold label")
        prompt_chars = sum(len(str(m.get("content") or "")) for m in messages)
        content = json.dumps(reply)
        record = JudgeCall(
            kind,
            max(1, prompt_chars // CHARS_PER_TOKEN),
            max(1, len(content) // CHARS_PER_TOKEN),
            n_texts,
            n_known,
        )
        return reply, record

    def _texts(self, data: dict[str, Any]) -> list[tuple[int, str, str | None]]:
        items = data.get("texts") or data.get("examples") or []
        return [
            (int(item.get("id", k + 1)), str(item.get("text", "")), self.gold_of(item.get("text")))
            for k, item in enumerate(items)
            if isinstance(item, dict)
        ]

    def _propose(self, task: str, data: dict[str, Any]) -> tuple[Any, int, int]:
        found = re.search(r"Propose up to (\d+) groups", task)
        n = int(found.group(1)) if found else 8
        texts = self._texts(data)
        seen = Counter(self.perceive(g, "propose", t) for _, t, g in texts if g is not None)
        groups = [self._issue(c) for c, _ in seen.most_common(n)]
        return {"groups": groups}, len(texts), sum(seen.values())

    def _check(self, task: str, data: dict[str, Any]) -> tuple[Any, int, int]:
        found = re.search(r'Property: "(.*)"', task)
        description = found.group(1) if found else ""
        target = self.class_of(description)
        texts = self._texts(data)
        yes = [
            i
            for i, t, g in texts
            if g is not None and target is not None and self.perceive(g, "check", t) == target
        ]
        return {"yes": yes}, len(texts), sum(1 for *_, g in texts if g is not None)

    def _categories(self, task: str) -> list[tuple[str | None, bool]]:
        part = task.split("Categories:\n", 1)[-1].split("\nReply with", 1)[0]
        classes = []
        for line in part.splitlines():
            found = re.match(r"\s*(\d+)\. (.*?): (.*)$", line)
            if found:
                classes.append(self._class_and_how(found.group(2), found.group(3)))
        return classes

    def _category_of_class(self, task: str) -> dict[int, int]:
        """Each class's category (0-based): where several stand for one class, the first named
        for it (as a model picks "card arrival" over "Card · Arrive" for a card-arrival text),
        else the first listed."""
        position: dict[int, int] = {}
        by_name: dict[int, bool] = {}
        for k, (c, named) in enumerate(self._categories(task)):
            if c is None:
                continue
            i = self.classes.index(c)
            if i not in position or (named and not by_name[i]):
                position[i], by_name[i] = k, named
        return position

    def _classify(self, task: str, data: dict[str, Any]) -> tuple[Any, int, int]:
        position = self._category_of_class(task)
        texts = self._texts(data)
        assignments = []
        for i, t, g in texts:
            if g is None or not position:
                continue
            seen = self.classes.index(self.perceive(g, "classify", t))
            if seen not in position:
                # The category a model would pick: the one whose class is most like it.
                options = list(position)
                seen = options[int(np.argmax(self.class_similarity[seen, options]))]
            assignments.append({"id": i, "category": position[seen] + 1})
        return {"assignments": assignments}, len(texts), sum(1 for *_, g in texts if g)

    def _merge(self, task: str, data: dict[str, Any]) -> tuple[Any, int, int]:
        found = re.search(r"into at most (\d+) final categories", task)
        k = int(found.group(1)) if found else 12
        candidates = [c for c in data.get("candidates") or [] if isinstance(c, dict)]
        known = Counter()
        for c in candidates:
            name, description = str(c.get("name", "")), str(c.get("description", ""))
            issued = self._issued.get(_key(name).lower()) or self._issued.get(
                _key(description).lower()
            )
            cls = issued or self._by_name.get(_key(name).lower())
            if cls is not None:
                known[cls] += 1
        categories = [self._issue(c) for c, _ in known.most_common(k)]
        return {"categories": categories}, len(candidates), sum(known.values())

    def _pairs(self, task: str, data: dict[str, Any]) -> tuple[Any, int, int]:
        same, n_known, n = [], 0, 0
        for k, pair in enumerate(data.get("pairs") or []):
            a, b = str(pair.get("a", "")), str(pair.get("b", ""))
            ga, gb = self.gold_of(a), self.gold_of(b)
            n += 2
            n_known += (ga is not None) + (gb is not None)
            if ga is None or gb is None:
                continue
            if self.perceive(ga, "pairs", a, b) == self.perceive(gb, "pairs", b, a):
                same.append(int(pair.get("id", k + 1)))
        return {"same": same}, n, n_known

    def _keyphrases(self, task: str, data: dict[str, Any]) -> tuple[Any, int, int]:
        texts = self._texts(data)
        items = [
            {"id": i, "keyphrases": [human(self.perceive(g, "keyphrases", t)).lower()]}
            for i, t, g in texts
            if g is not None
        ]
        return {"items": items}, len(texts), len(items)

    def _label(self, task: str, data: dict[str, Any]) -> tuple[Any, int, int]:
        texts = self._texts(data)
        golds = [g for *_, g in texts if g is not None]
        if not golds:
            return {}, len(texts), 0
        majority = Counter(golds).most_common(1)[0][0]
        c = self.perceive(majority, "label", *(t for _, t, _ in texts))
        name = human(c)
        evidence = [i for i, _, g in texts if g == c][:3] or [texts[0][0]]
        reply = {
            "name": name[:60],
            "description": f"Texts about {name.lower()}.",
            "inclusion_criterion": f"The text is about {name.lower()}.",
            "evidence": evidence,
        }
        return reply, len(texts), len(golds)

    # --- HTTP -----------------------------------------------------------------------------

    def _record(self, record: JudgeCall) -> None:
        with self._lock:
            self.records.append(record)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        judge = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8") if length else ""
                if not self.path.endswith("/chat/completions"):
                    self._send(404, {"error": {"message": "not found"}})
                    return
                try:
                    body = json.loads(raw) if raw else {}
                    reply, record = judge.answer(body)
                except (JudgeRefusal, json.JSONDecodeError, TypeError, AttributeError) as err:
                    judge._record(JudgeCall("refused", len(raw) // CHARS_PER_TOKEN, 0, 0, 0, 400))
                    error = {"message": f"simulated judge: {err}", "type": "invalid_request_error"}
                    self._send(400, {"error": error})
                    return
                judge._record(record)
                self._send(200, _completion(body, json.dumps(reply), record))

            def _send(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler


def _completion(body: dict[str, Any], content: str, record: JudgeCall) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-judge-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", MODEL),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": record.prompt_tokens,
            "completion_tokens": record.completion_tokens,
            "total_tokens": record.prompt_tokens + record.completion_tokens,
        },
    }
