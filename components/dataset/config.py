"""Settings of the dataset stage (defaults, then YAML `dataset:`, then `--set dataset.x=y`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.common.config import StrictModel


class SplitConfig(StrictModel):
    validation: float = Field(default=0.1, ge=0, lt=1)
    test: float = Field(default=0.1, ge=0, lt=1)
    # Whole books held out into the test split (ebook numbers or file keys), so a test
    # passage never shares a book with a training passage.
    holdout_books: list[str] = []

    @model_validator(mode="before")
    @classmethod
    def _keys_as_text(cls, data):
        if isinstance(data, dict) and "holdout_books" in data:
            data = {**data, "holdout_books": [str(b) for b in data["holdout_books"] or []]}
        return data

    @model_validator(mode="after")
    def _leave_some_training(self):
        if self.validation + self.test >= 1:
            raise ValueError("split.validation + split.test must leave some data for training (sum < 1)")
        return self


class DatasetConfig(StrictModel):
    # Passage length in text lines (the reference cut 50-line passages).
    lines_per_passage: int = Field(default=50, gt=0)
    # Passages shorter than this (the end of a chapter, say) are dropped.
    min_lines: int = Field(default=10, gt=0)
    # How `text` is rendered from prompt and response: llama, falcon, or chat (the
    # tokenizer's own template, which needs the model stage).
    template: Literal["llama", "falcon", "chat"] = "llama"
    # Drop passages whose word 5-gram sets overlap this much (Jaccard, by MinHash).
    near_duplicate_threshold: float = Field(default=0.8, gt=0, le=1)
    # Cap the rows per genre (after de-duplication), for small demo runs. None: all.
    # Held-out books are kept whole and not counted.
    max_rows_per_genre: int | None = Field(default=None, gt=0)
    split: SplitConfig = SplitConfig()
    seed: int = 42

    @model_validator(mode="after")
    def _min_fits(self):
        if self.min_lines > self.lines_per_passage:
            raise ValueError(
                f"min_lines ({self.min_lines}) is larger than lines_per_passage ({self.lines_per_passage})"
            )
        return self
