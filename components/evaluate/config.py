"""Settings of the evaluate stage."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from components.common.config import StrictModel


class LexiconSettings(StrictModel):
    # None: NLTK's opinion lexicon (Hu and Liu); else two word-list files, one word a line.
    positive: str | None = None
    negative: str | None = None
    # lemma: exact matches of words or their WordNet lemmas (the default: no artifacts);
    # stem: the reference study's stemmed matching, for comparison ("womanizer" -> "woman").
    match: Literal["lemma", "stem"] = "lemma"
    top_k: int = Field(default=30, gt=0)


class TopicSettings(StrictModel):
    n: int = Field(default=5, gt=0)
    top_n: int = Field(default=20, gt=0)
    passes: int = Field(default=10, gt=0)
    normalize: Literal["lemma", "stem"] = "lemma"


class SentimentSettings(StrictModel):
    # A hub id, local folder or s3:// prefix of a binary text classifier. The default is
    # what the reference's BERT pipeline used. Offline, `minilm-polarity` (or the quicker
    # `minilm-polarity-small`) is a stand-in trained once, here, from installed packages
    # (components.evaluate.sentiment_model).
    # None: VADER only.
    model: str | None = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
    # Where downloaded or trained models are kept (default: the language models' cache).
    model_cache: str | None = None
    vader: bool = True

    @field_validator("model", mode="before")
    @classmethod
    def _empty_means_none(cls, value):
        # KFP parameters cannot hold null, so the pipeline passes "" for "no classifier".
        return None if value == "" else value


class GenreSettings(StrictModel):
    # Training passages per catalog group for the genre classifier (a seeded sample);
    # None: every training passage. Embedding is the cost (about 7 passages a second on 2
    # cores), paid once per dataset: the reference is kept by the key of its inputs.
    train_per_group: int | None = Field(default=None, gt=0)
    # Test passages per catalog group for the classifier's accuracy (a seeded sample).
    test_per_group: int = Field(default=200, gt=0)
    # Held-out passages per genre for the closeness reference (at least the stories per
    # genre of a set: each story is paired with a passage of its own).
    reference_per_genre: int = Field(default=100, gt=1)


class EvaluateConfig(StrictModel):
    lexicon: LexiconSettings = LexiconSettings()
    topics: TopicSettings = TopicSettings()
    sentiment: SentimentSettings = SentimentSettings()
    genre: GenreSettings = GenreSettings()
    # The training-data set: this many passages per genre (seeded), the size of a story
    # set, since distinct-n and self-BLEU depend on size. None: every training passage.
    data_per_genre: int | None = Field(default=100, gt=0)
    # Word n-grams for the copying measure.
    copy_ngram: int = Field(default=8, gt=1)
    # Self-BLEU compares a fixed sample of this many stories (it grows with the square).
    self_bleu_sample: int = Field(default=50, ge=2)
    # Where finished evaluations are kept by the key of their inputs (an s3:// prefix on a
    # cluster), so a rerun computes none twice. None: <cache>/evaluations.
    results_root: str | None = None
    seed: int = 42
