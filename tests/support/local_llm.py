"""The marks of a test module that needs the real local model (llama.cpp's server with
SmolLM2-135M, the ``local_server`` fixture of tests/conftest.py)."""

from __future__ import annotations

import importlib.util

import pytest

LOCAL_LLM_MARKS = [
    pytest.mark.llamacpp,
    pytest.mark.slow,  # a 135M model on 2 cores: minutes; CI runs them (make test-slow)
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None,
        reason="llama-cpp-python is not installed (make local-llm installs it)",
    ),
]
