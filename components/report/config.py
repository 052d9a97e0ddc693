"""Settings of the report stage."""

from __future__ import annotations

from pydantic import Field

from components.common.config import StrictModel


class ReportConfig(StrictModel):
    title: str = "taletune: stories by genre, model and training level"
    # Stories shown in full under each set; the rest sit in a collapsed list.
    samples_per_set: int = Field(default=3, ge=0)
    # Every story of every set in the page (collapsed), HTML-escaped; off for a smaller page.
    all_stories: bool = True
    # Lexicon words per polarity and topic words shown per set.
    top_words: int = Field(default=30, gt=0)
    topic_words: int = Field(default=20, gt=0)
