"""LLM names and explanations for clusters, through any OpenAI-compatible endpoint.

The only package that imports ``openai``. It may use ``clustering``; it never imports
``storage``, ``corpusmap``, ``ui`` or streamlit: a store is passed in as a ``CallStore``.
"""

from llm.cache import CallStore
from llm.errors import LLMCallError, LLMConfigError, LLMError, LocalModelError
from llm.labeler import FAILED_STATUS, LLMLabeler
from llm.local import LocalModelServer, local_model_path, serve_local_model
from llm.prompts import PROMPT_VERSION
from llm.settings import LLMSettings
from llm.usage import LLMUsage

__all__ = [
    "FAILED_STATUS",
    "PROMPT_VERSION",
    "CallStore",
    "LLMCallError",
    "LLMConfigError",
    "LLMError",
    "LLMLabeler",
    "LLMSettings",
    "LLMUsage",
    "LocalModelError",
    "LocalModelServer",
    "local_model_path",
    "serve_local_model",
]
