"""Settings of the train stage (defaults, then YAML `train:`, then `--set train.x=y`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.common.config import StrictModel


class Level(StrictModel):
    """A training level: a share of the training rows, seen for some epochs."""

    fraction: float = Field(gt=0, le=1)
    epochs: int = Field(gt=0)

    @property
    def samples_factor(self) -> float:
        """Epochs' worth of rows this level has seen: 0.3 for 30% of the data once."""
        return self.fraction * self.epochs


class LoraSettings(StrictModel):
    r: int = Field(default=16, gt=0)
    alpha: int = Field(default=32, gt=0)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    # None: chosen per architecture (q_proj,v_proj for Llama-style; query_key_value for Falcon).
    target_modules: list[str] | None = None


class TrainSettings(StrictModel):
    """What every model of an experiment shares (the experiment's `train:`); the model
    itself and what differs per model come from its entry in `models:`."""

    # Where converted base models are cached: a folder or s3:// prefix. None means
    # $TALETUNE_MODEL_CACHE, else <cache>/models.
    model_cache: str | None = None
    # Where checkpoints go (an s3:// prefix on a cluster). None: <cache>/checkpoints.
    checkpoint_root: str | None = None
    checkpoint_every: int = Field(default=25, gt=0)
    # fp32; bf16 weights; bf16-mixed (fp32 weights, bf16 autocast: the fast path on CPUs
    # with AVX512-BF16 or AMX); 8bit/4bit (bitsandbytes, CUDA only). auto picks bf16 on a
    # GPU that supports it, bf16-mixed on a CPU that does, and fp32 otherwise.
    precision: Literal["auto", "fp32", "bf16", "bf16-mixed", "8bit", "4bit"] = "auto"
    # Run the decoder layers under torch.compile. auto: on a CPU with a C++ compiler, when
    # the run trains at least 200,000 tokens. Measured here: the first compile costs
    # 22-40 s, then steps run 1.04x-1.16x faster, so it pays after 30,000-200,000 tokens
    # (docs/benchmarks.md). Not by itself on a GPU, where it was not measured.
    compile: bool | Literal["auto"] = "auto"
    lora: LoraSettings = LoraSettings()
    learning_rate: float = Field(default=2e-4, gt=0)
    batch_size: int = Field(default=8, gt=0)
    gradient_accumulation: int = Field(default=1, gt=0)
    block_size: int = Field(default=512, gt=8)
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0)
    # Pack several rows into each block (no padding); off by default, as in the reference.
    packing: bool = False
    # The reference study's levels; level 0 (untrained) is always evaluated too.
    levels: list[Level] = [Level(fraction=0.3, epochs=1), Level(fraction=1.0, epochs=1), Level(fraction=1.0, epochs=3)]
    # nested: one run, snapshotting each level on the way (3 epochs of compute for all
    # four levels); independent: one run per level with its own schedule.
    mode: Literal["nested", "independent"] = "nested"
    # Caps for small runs: training rows per genre, validation rows in all.
    max_train_rows_per_genre: int | None = Field(default=None, gt=0)
    max_eval_rows: int = Field(default=64, gt=0)
    # Independent mode only: train just this level (1-based), so a pipeline can run one
    # task per level in parallel. None: every level, one after another.
    only_level: int | None = Field(default=None, gt=0)
    seed: int = 42

    @model_validator(mode="before")
    @classmethod
    def _no_model_here(cls, data):
        if cls is TrainSettings and isinstance(data, dict) and "model" in data:
            raise ValueError("the model is no longer set in train:; list it under models: (for example models: [smollm2-135m])")
        return data

    @model_validator(mode="after")
    def _levels_are_ordered(self):
        if not self.levels:
            raise ValueError("levels is empty; give at least one {fraction, epochs}")
        factors = [lvl.samples_factor for lvl in self.levels]
        if self.mode == "nested":
            if factors != sorted(set(factors)):
                raise ValueError("in nested mode, levels must grow: each sees more rows x epochs than the one before")
            if any(lvl.fraction < 1 and lvl.epochs > 1 for lvl in self.levels):
                raise ValueError("nested mode snapshots one run, so a level is (fraction, 1) or (1.0, epochs); use mode: independent")
        if self.only_level is not None and (self.mode != "independent" or self.only_level > len(self.levels)):
            raise ValueError(f"only_level needs mode: independent and a level between 1 and {len(self.levels)}")
        return self


class TrainConfig(TrainSettings):
    """One model's training: the shared settings plus the model (what `python -m components.train` reads)."""

    # A model alias (smollm2-135m, gemma3-270m), a Hugging Face hub id, a local folder,
    # or an s3:// prefix holding a model folder.
    model: str = "smollm2-135m"
    # The prompt format the rows are rendered in: llama, falcon, or chat (the tokenizer's
    # own template). None: what suits the model (components.common.prompts.default_format).
    format: Literal["llama", "falcon", "chat"] | None = None
    trust_remote_code: bool = False

    @model_validator(mode="after")
    def _resolve_format(self):
        if self.format is None:
            from components.common.prompts import default_format

            self.format = default_format(self.model)
        return self

    def shape(self) -> dict:
        """What a compiled pipeline's DAG is built around: a run cannot change it."""
        return {"levels": len(self.levels), "mode": self.mode}


def for_model(shared: dict, model: dict, shape: dict | None = None, only_level: int = 0) -> TrainConfig:
    """A pipeline task's settings: the run's shared `train:` parameter (see
    components.common.config.to_parameter) with the model's own settings on top, checked
    against the DAG the pipeline was compiled for."""
    from components.common.config import from_parameter_with
    from components.common.errors import TaletuneError

    config = from_parameter_with(TrainConfig, shared, {**model, **({"only_level": only_level} if only_level else {})}, "train config")
    if shape and config.shape() != shape:
        raise TaletuneError(
            f"this run asks for {config.shape()['levels']} levels in {config.mode} mode, but the pipeline was compiled for "
            f"{shape['levels']} in {shape['mode']} mode; the models, the number of levels and the training mode shape the DAG, "
            "so change them in the config and compile again (python -m pipelines compile --config ... --set train.levels=...)"
        )
    return config
