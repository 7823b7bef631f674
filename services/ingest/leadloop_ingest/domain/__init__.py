"""Ingest's pure decisions: validation, normalisation, identity keys, scoring.

Nothing here performs I/O or reads the clock; import-linter enforces it.
"""
