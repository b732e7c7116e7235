"""Test doubles and helpers that are real enough to test against: a scripted
OpenAI-compatible HTTP server, an in-memory call store, small cluster summaries."""
