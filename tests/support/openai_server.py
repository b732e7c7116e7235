"""A real HTTP server on 127.0.0.1 that speaks the chat-completions wire format.

Each request gets the next scripted ``Reply`` (``server.script(...)``), or the default reply
once the script is used up: by default a valid label built from the request's own keywords, so
answers do not depend on the order in which worker threads send their requests. Every request
is recorded (``server.requests``) so tests can assert on what a client really sent.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from llm.client import forget_response_formats

PROMPT_TOKENS = 100
COMPLETION_TOKENS = 20


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``content=None`` with status 200 sends ``"content": null``."""

    status: int = 200
    content: str | None = ""
    refusal: str | None = None
    finish_reason: str = "stop"
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0
    error: str = ""
    body: bytes | None = None
    """Sent as is instead of a chat completion (a broken server)."""
    prompt_tokens: int = PROMPT_TOKENS
    completion_tokens: int = COMPLETION_TOKENS

    @classmethod
    def label(
        cls,
        name: str = "Card payment problems",
        description: str = "Customers report card payments that failed or are pending.",
        inclusion_criterion: str = "The text reports a problem with a card payment.",
        evidence: list[Any] | None = None,
        **kwargs: Any,
    ) -> Reply:
        data = {
            "name": name,
            "description": description,
            "inclusion_criterion": inclusion_criterion,
            "evidence": [1, 2] if evidence is None else evidence,
        }
        return cls(content=json.dumps(data), **kwargs)

    @classmethod
    def text(cls, content: str, **kwargs: Any) -> Reply:
        return cls(content=content, **kwargs)

    @classmethod
    def empty(cls) -> Reply:
        return cls(content="")

    @classmethod
    def refused(cls, message: str = "I can't help with that.") -> Reply:
        return cls(content=None, refusal=message)

    @classmethod
    def http_error(
        cls, status: int, message: str = "scripted error", retry_after: str | None = None
    ) -> Reply:
        headers = (("Retry-After", retry_after),) if retry_after is not None else ()
        return cls(status=status, error=message, headers=headers)

    @classmethod
    def slow(cls, seconds: float, reply: Reply | None = None) -> Reply:
        base = reply or cls.label()
        return cls(**{**base.__dict__, "delay_s": seconds})


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] = field(default_factory=dict)
    raw: str = ""

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    def message(self, role: str) -> str:
        return "\n".join(m.get("content") or "" for m in self.messages if m.get("role") == role)


def keywords_of(body: dict[str, Any]) -> list[str]:
    """The keywords in a request's <data> part (for default replies that fit the cluster)."""
    for message in body.get("messages", []):
        if message.get("role") != "user":
            continue
        match = re.search(r"<data>\n(.*?)\n</data>", message.get("content") or "", re.DOTALL)
        if match:
            try:
                return list(json.loads(match.group(1)).get("keywords", []))
            except (json.JSONDecodeError, AttributeError):
                return []
    return []


def default_reply(body: dict[str, Any]) -> Reply:
    words = keywords_of(body)[:2] or ["misc"]
    topic = " and ".join(words)
    return Reply.label(
        name=f"Texts about {topic}",
        description=f"Texts that are about {topic}.",
        inclusion_criterion=f"The text is about {topic}.",
    )


Responder = Callable[[dict[str, Any]], Reply]


class ScriptedOpenAIServer:
    """``with ScriptedOpenAIServer() as server:`` then point a client at ``server.base_url``.

    ``response_formats`` lists the ``response_format`` types it takes (``None``: all); a request
    with another type gets ``format_error_status``: ``()`` with 400 is a server that takes none,
    ``("json_object",)`` with 500 is llama-cpp-python's server.
    """

    def __init__(
        self,
        *,
        response_formats: tuple[str, ...] | None = None,
        format_error_status: int = 400,
        default: Responder = default_reply,
        host: str = "127.0.0.1",
    ) -> None:
        self.response_formats = response_formats
        self.format_error_status = format_error_status
        self.default = default
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight_seen = 0
        """Most chat requests being answered at the same time."""
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer((host, 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def start(self) -> ScriptedOpenAIServer:
        # A port an earlier server of this process used may come back: what the client found
        # out about that server's response formats is not this one's.
        forget_response_formats(urlsplit(self.base_url).netloc)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def __enter__(self) -> ScriptedOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Inside the server ---------------------------------------------------------------------

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        kind = (body.get("response_format") or {}).get("type")
        if kind and self.response_formats is not None and kind not in self.response_formats:
            return Reply.http_error(
                self.format_error_status,
                f"response_format.type: input should be one of {self.response_formats}",
            )
        with self._lock:
            scripted = self._script.popleft() if self._script else None
        return scripted or self.default(body)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server._record(self, "")
                if self.path.rstrip("/").endswith("/models"):
                    self._send(
                        200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]}
                    )
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8") if length else ""
                body = server._record(self, raw)
                if not self.path.endswith("/chat/completions"):
                    self._send(404, {"error": {"message": "not found"}})
                    return
                reply = server._next_reply(body)
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight_seen = max(server.max_in_flight_seen, server.in_flight)
                try:
                    self._answer(body, reply)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _answer(self, body: dict[str, Any], reply: Reply) -> None:
                if reply.delay_s and server._stopping.wait(reply.delay_s):
                    return
                if reply.body is not None:
                    self._send_bytes(reply.status, reply.body, "application/json", reply.headers)
                elif reply.status != 200:
                    error = {"message": reply.error, "type": "scripted", "code": reply.status}
                    self._send(reply.status, {"error": error}, reply.headers)
                else:
                    self._send(200, completion(body, reply), reply.headers)

            def _send(
                self, status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()
            ) -> None:
                self._send_bytes(status, json.dumps(payload).encode(), "application/json", headers)

            def _send_bytes(
                self, status: int, data: bytes, kind: str, headers: tuple[tuple[str, str], ...]
            ) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in headers:
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its time-out): nothing to answer

        return Handler

    def _record(self, handler: BaseHTTPRequestHandler, raw: str) -> dict[str, Any]:
        try:
            body = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            body = {}
        request = RecordedRequest(
            handler.command,
            handler.path,
            {k.lower(): v for k, v in handler.headers.items()},
            body,
            raw,
        )
        with self._lock:
            self.requests.append(request)
        return body


def completion(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "scripted"),
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": reply.content,
                    "refusal": reply.refusal,
                },
                "finish_reason": reply.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        },
    }


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port() -> int:
    """A port that was free a moment ago (for servers that cannot bind port 0 themselves)."""
    return closed_port()
