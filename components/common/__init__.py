"""Code that two or more components need: storage, config, provenance, text blocks."""
