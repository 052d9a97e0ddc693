"""Ingest: fetch Project Gutenberg books and strip everything that is not story."""
