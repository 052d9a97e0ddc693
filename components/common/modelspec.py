"""One entry of an experiment's `models:` list: a model and what differs for it.

    models:
      - smollm2-135m                                   # an alias, with every shared default
      - {name: gemma3-270m, format: llama, lora: {r: 8}}
      - {name: tiiuae/falcon-7b-instruct, precision: 8bit, gpu: {memory_limit: 64G}}
      - meta-llama/Llama-2-7b-hf@<commit>             # a hub model pinned to a commit (or a tag or branch)
      - {name: gemma3-270m, train: {max_train_rows_per_genre: 8}, generate: {n: 8}}

The shared defaults are the experiment's `train:`, `generate:` and `kubernetes.gpu`;
an entry overrides them for its model only. `train_overrides` and `generate_overrides`
are what the train and generate stages merge over the shared settings.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, model_validator

from components.common.config import StrictModel
from components.common.models import hub_id
from components.common.prompts import default_format


def label_for(name: str) -> str:
    """A short name for tasks and the report: the alias, or the last part of a hub id, folder
    or prefix; a pinned hub revision after it (a commit's first 7 characters)."""
    repo, revision = hub_id(name) or (name, None)
    last = repo.rstrip("/").rsplit("/", 1)[-1] or repo
    if revision:
        last += "-" + (revision[:7] if re.fullmatch(r"[0-9a-f]{40}", revision) else revision)
    return re.sub(r"[^a-z0-9]+", "-", last.lower()).strip("-") or "model"


class ModelSpec(StrictModel):
    # An alias (smollm2-135m, gemma3-270m), a Hugging Face hub id (org/name, or org/name@revision
    # to pin a commit, tag or branch), a local folder or an s3:// prefix.
    name: str = Field(min_length=1)
    # Tasks, artifacts and the report name the model by this; None: from the name.
    label: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]*$")
    # The prompt format (llama, falcon or chat); None: what suits the model.
    format: Literal["llama", "falcon", "chat"] | None = None
    precision: Literal["auto", "fp32", "bf16", "bf16-mixed", "8bit", "4bit"] | None = None
    trust_remote_code: bool | None = None
    # LoRA settings for this model (r, alpha, dropout, target_modules), over train.lora.
    lora: dict[str, Any] | None = None
    # Any other train: setting for this model only (learning_rate, block_size, ...).
    train: dict[str, Any] = {}
    # Any other generate: setting for this model only (n, sampling, ...).
    generate: dict[str, Any] = {}
    # kubernetes.gpu settings for this model's train and generate tasks (memory_limit, count, ...).
    gpu: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data):
        return {"name": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _resolve(self):
        if re.match(r"\w[\w.-]*/\w[\w.-]*@", self.name) and hub_id(self.name) is None:  # found at compile time, not in a pod
            raise ValueError(f"{self.name!r}: a pinned hub model is org/name@revision, the revision a commit, tag or branch "
                             "(letters, digits, '.', '_', '-' and '/')")
        if self.label is None:
            self.label = label_for(self.name)
        if self.format is None:
            self.format = default_format(self.name)
        return self

    def train_overrides(self) -> dict:
        """The train stage's per-model settings, over the shared `train:`."""
        out = {**self.train, "model": self.name, "format": self.format}
        if self.precision is not None:
            out["precision"] = self.precision
        if self.trust_remote_code is not None:
            out["trust_remote_code"] = self.trust_remote_code
        if self.lora:
            out["lora"] = self.lora
        return out

    def generate_overrides(self) -> dict:
        """The generate stage's per-model settings, over the shared `generate:`.
        8-bit and 4-bit are training precisions: stories are written in the stage's own."""
        out = {**self.generate, "model": self.name, "format": self.format}
        if self.trust_remote_code is not None:
            out["trust_remote_code"] = self.trust_remote_code
        if self.precision in ("fp32", "bf16", "bf16-mixed"):
            out["precision"] = self.precision
        return out


def merged(shared: dict, overrides: dict) -> dict:
    """Shared settings with a model's overrides on top; nested mappings (lora) merge key by key."""
    out = dict(shared)
    for key, value in overrides.items():
        out[key] = {**out[key], **value} if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
