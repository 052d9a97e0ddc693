"""Train: LoRA fine-tuning of a causal LM on the genre dataset, at several training levels."""
