"""The taletune pipeline: its DAG, its configs, and `python -m pipelines`."""
