"""Settings of the generate stage: the model, the stories wanted, and how to sample them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.common.config import StrictModel
from components.generate.sampling import Sampling


class SamplingSettings(StrictModel):
    """Sampling, not greedy decoding, by default: greedy decoding loops on n-grams."""

    max_new_tokens: int = Field(default=200, gt=0)
    temperature: float = Field(default=0.8, gt=0)
    top_p: float = Field(default=0.95, gt=0, le=1)
    top_k: int = Field(default=50, ge=0)  # 0: off
    repetition_penalty: float = Field(default=1.1, gt=0)  # 1.0: off
    no_repeat_ngram_size: int = Field(default=0, ge=0)  # 0: off
    greedy: bool = False

    def sampling(self) -> Sampling:
        return Sampling(**self.model_dump(exclude={"max_new_tokens"}))


class GenerateSettings(StrictModel):
    """What every model's story sets share (the experiment's `generate:`)."""

    # Where base models are cached; None: the train stage's model cache.
    model_cache: str | None = None
    # fp32; bf16 (bf16 weights); bf16-mixed (fp32 weights, bf16 autocast); auto: bf16
    # weights where bf16 is native (a GPU, a CPU with AVX512-BF16 or AMX), fp32 elsewhere.
    precision: Literal["auto", "fp32", "bf16", "bf16-mixed"] = "auto"
    # The catalog's genres to write; None: all of them.
    genres: list[str] | None = None
    n: int = Field(default=100, gt=0, description="stories per genre")
    sampling: SamplingSettings = SamplingSettings()
    # Stories in flight at once; a finished story's slot goes to the next one. None:
    # chosen from free memory, then kept for the whole set, even on resume, because
    # batch size can change floating-point results.
    batch_size: int | None = Field(default=None, gt=0)
    # A whole chunk in flight: 100 stories at once wrote 25% more tokens per second than
    # 64 slots refilled, on this CPU (docs/benchmarks.md), because refilled slots leave
    # a long tail of few rows.
    max_batch_size: int = Field(default=128, gt=0)
    # Stories per chunk: each chunk is written as one object as soon as it is done, and
    # a killed task loses at most the chunk in progress.
    chunk_size: int = Field(default=128, gt=0)
    # Where finished batches go as they finish (an s3:// prefix on a cluster), so a
    # retried task skips them. None: <cache>/stories.
    progress_root: str | None = None
    backend: Literal["torch", "vllm"] = "torch"
    seed: int = 42

    @model_validator(mode="before")
    @classmethod
    def _no_model_here(cls, data):
        if cls is GenerateSettings and isinstance(data, dict) and ({"model", "template", "format"} & set(data)):
            raise ValueError("the model and its prompt format are set per model under models:, not in generate:")
        return data

    @model_validator(mode="after")
    def _sizes(self):
        if self.batch_size and self.batch_size > self.max_batch_size:
            self.max_batch_size = self.batch_size
        return self


class GenerateConfig(GenerateSettings):
    """One model's story sets (what `python -m components.generate` reads)."""

    # The base model: an alias, hub id, local folder or s3:// prefix (components.common.models).
    model: str = "smollm2-135m"
    # The prompt format: None means the one the adapter was trained with (its
    # training.json), else what suits the model; a format other than the adapter's is refused.
    format: Literal["llama", "falcon", "chat"] | None = None
    trust_remote_code: bool = False
