"""Benchmarks of corpusmap against real labelled corpora and peers (BERTopic, k-means).

Run ``python -m bench.compare``, ``python -m bench.embed_speed`` and ``python -m bench.scale``;
see bench/README.md.
"""
