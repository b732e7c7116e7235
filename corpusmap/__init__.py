"""corpusmap: upload a corpus, get named, explained clusters on a map.

The application layer: wires ``clustering`` (pure stages), ``llm`` (labels) and ``storage``
(persistence) into services that the CLI, the Python API and the Streamlit app share.
"""

from corpusmap.api import RunHandle, open_run, open_store, run
from corpusmap.errors import CorpusmapError

__all__ = ["CorpusmapError", "RunHandle", "open_run", "open_store", "run"]
