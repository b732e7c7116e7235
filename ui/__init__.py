"""The Streamlit side of corpusmap: settings, cached resources, session keys, background runs and
widgets. The only package besides ``pages/`` and ``app.py`` that imports streamlit."""
