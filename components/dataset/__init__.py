"""Dataset: cut cleaned books into labelled passages and split them without leakage."""
