"""Batched sampling with a KV cache, one random stream per story.

    rows = generate_batch(model, [prompt_ids] * 3, seeds=[42, 43, 44], max_new_tokens=200,
                          sampling=Sampling(), eos_ids={2})

Why not `model.generate`: it draws every row from one global random stream, so a story
would depend on which other stories shared its batch, and a resumed set could not
reproduce an uninterrupted one. Here each row samples from its own `torch.Generator`
(seeded `seed + i` by the caller). All prompts of a batch have the same length, so
no padding is needed; each distinct prompt is run once and its cache copied to the
rows that share it. A row that ends (EOS or length) gives its slot to a waiting row,
which starts at the slot's next cache column, with its own positions and a mask over
the columns before it (`generate_batch`).

The model is called with transformers 5.24's `cache=` keyword: an older forward takes
it into `**kwargs` and silently decodes without the cache. `pyproject.toml` pins the
versions that `tests/test_sampling.py` (greedy against `model.generate`) passes on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 50  # 0: no top-k
    repetition_penalty: float = 1.1  # 1.0: off
    no_repeat_ngram_size: int = 0  # 0: off
    greedy: bool = False


@dataclass
class Row:
    tokens: list[int] = field(default_factory=list)
    finish_reason: str = "length"
    seconds: float = 0.0


def generate_batch(model, prompts: list[list[int]], seeds: list[int], max_new_tokens: int, sampling: Sampling,
                   eos_ids: set[int], amp=None, on_token=None, slots: int | None = None) -> list[Row]:
    """Sample one continuation per row (a prompt and a seed); returns the rows in order.

    At most `slots` rows are in flight (default: all). When a row ends and rows are
    waiting, the next one takes its slot at once, so the batch stays full: its prompt
    is written into the slot's cache just before the current column, with its own
    positions and a mask hiding the columns before it. Which row enters which slot and
    when follows from the rows alone, so the same rows give the same stories.
    `on_token(row, token_id)` is called for each new token (streaming to a terminal).
    `seconds` is the wall time from the call's start until that row ended.
    """
    import contextlib

    import torch

    device = next(model.parameters()).device
    n = len(seeds)
    if len(prompts) != n or len({len(p) for p in prompts}) != 1:
        raise ValueError("give one prompt per seed, all of the same length")
    width = len(prompts[0])
    refill = preallocatable(model.config) and width > 1
    slots = min(n, slots or n) if refill else n
    steps_bound = max_new_tokens * -(-n // slots)  # each slot runs its rows one after another
    rows = [Row() for _ in range(n)]
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    banned = NgramBan(sampling.no_repeat_ngram_size, prompts)
    active = list(range(slots))  # batch position -> row number
    waiting = list(range(slots, n))
    start = [0] * slots  # the cache column of each slot's first prompt token
    history = torch.tensor(prompts[:slots])  # the tokens each slot has seen, for the penalty
    started = time.perf_counter()
    casting = torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext()
    with torch.inference_mode(), casting:
        cache = preallocated_cache(model.config, width + steps_bound)
        distinct = sorted(set(map(tuple, prompts[:slots])))
        out = model(input_ids=torch.tensor(distinct, device=device), cache=cache, use_cache=True, logits_to_keep=1)
        which = torch.tensor([distinct.index(tuple(prompts[r])) for r in active])
        cache.batch_select_indices(which.to(device))  # each row gets its prompt's cache
        logits = out.logits[:, -1].float().cpu()[which]
        column = width  # where the next tokens go in the cache
        while active:
            choice = choose(logits, history, [generators[r] for r in active], sampling, banned.for_rows(active))
            history = torch.cat([history, choice[:, None]], dim=1)
            keep, entering = [], []
            for b, r in enumerate(active):
                token = int(choice[b])
                if token in eos_ids:
                    rows[r].finish_reason = "eos"
                else:
                    rows[r].tokens.append(token)
                    banned.add(r, token)
                    if on_token:
                        on_token(r, token)
                    if len(rows[r].tokens) < max_new_tokens:
                        keep.append(b)
                        continue
                rows[r].seconds = time.perf_counter() - started
                if len(entering) < len(waiting):  # the next waiting row takes this slot
                    keep.append(b)
                    entering.append(b)
            if not keep:
                break
            if len(keep) < len(active):
                cache.batch_select_indices(torch.tensor(keep, device=device))
                choice, history = choice[keep], history[keep]
                start = [start[b] for b in keep]
                entering = [keep.index(b) for b in entering]
                active = [active[b] for b in keep]
            for b in entering:
                r = active[b] = waiting.pop(0)
                start[b] = column - (width - 1)
                choice[b] = prompts[r][-1]  # fed below, at this column, like every row's last token
                # Its prompt, padded with its own first token: a repeat is penalised once all the same.
                history[b] = prompts[r][0]
                history[b, :width] = torch.tensor(prompts[r])
            if entering:
                _write_prompts(model, cache, [prompts[active[b]][:-1] for b in entering], entering, column - (width - 1), device)
            positions = torch.tensor([[column - s] for s in start], device=device)
            mask = None
            if any(start):
                cols = torch.arange(column + 1)
                mask = (cols[None, :] >= torch.tensor(start)[:, None]).long().to(device)
            out = model(input_ids=choice[:, None].to(device), cache=cache, use_cache=True, position_ids=positions, attention_mask=mask)
            column += 1
            logits = out.logits[:, -1].float().cpu()
    return rows


def _write_prompts(model, cache, prompts: list[list[int]], slots: list[int], column: int, device) -> None:
    """Run the prompts (all but their last token) and write their keys and values into
    the given slots of `cache`, at columns column .. column + len - 1."""
    import torch
    from transformers import DynamicCache

    fresh = DynamicCache(config=model.config)
    model(input_ids=torch.tensor(prompts, device=device), cache=fresh, use_cache=True, logits_to_keep=1)
    index = torch.tensor(slots, device=device)
    for layer, new in zip(cache.layers, fresh.layers):
        layer.write_rows(index, new.keys, new.values, column)


def choose(logits, history, generators, sampling: Sampling, bans: list[list[int]]):
    """The next token of each row; `logits` (rows x vocab, float32) is changed in place.

    Penalties and bans first, then greedy, or temperature, top-k and top-p. Each row
    draws one uniform number from its own generator and picks by inverse CDF, so no row
    depends on another. Everything after top-k works on rows x k, not the vocabulary.
    """
    import torch

    if sampling.repetition_penalty != 1.0:  # as in CTRL and transformers: shrink the scores of seen tokens
        p = sampling.repetition_penalty
        seen = logits.gather(1, history)
        logits.scatter_(1, history, torch.where(seen < 0, seen * p, seen / p))
    for b, tokens in enumerate(bans):
        if tokens:
            logits[b, tokens] = float("-inf")
    if sampling.greedy:
        return logits.argmax(dim=-1)
    if sampling.top_k:
        values, index = logits.topk(min(sampling.top_k, logits.shape[-1]), dim=-1)
    elif sampling.top_p < 1.0:
        values, index = logits.sort(dim=-1, descending=True)  # the whole vocabulary: slow, but exact
    else:
        values, index = logits, None
    probs = (values / sampling.temperature).softmax(dim=-1)
    if sampling.top_p < 1.0:
        # Keep the smallest head whose mass reaches top_p (always at least one token).
        probs = probs.masked_fill(probs.cumsum(dim=-1) - probs >= sampling.top_p, 0.0)
    cdf = probs.cumsum(dim=-1)
    u = torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in generators]).to(cdf.dtype)
    picks = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True).clamp_(max=cdf.shape[-1] - 1)
    return picks[:, 0] if index is None else index.gather(1, picks)[:, 0]


class NgramBan:
    """no_repeat_ngram_size: the tokens that would repeat an n-gram already in a row.

    Kept per row as a map from (n-1)-gram to next tokens, updated as tokens arrive, so
    each step costs a dictionary lookup per row instead of a scan of the history.
    """

    def __init__(self, size: int, prompts: list[list[int]]):
        self.size = size
        self.seqs = [list(p) for p in prompts] if size else []
        self.seen: list[dict] = [{} for _ in self.seqs]
        for r, seq in enumerate(self.seqs):
            for i in range(len(seq) - size + 1):
                self._record(r, seq[i : i + size])

    def _record(self, r: int, gram: list[int]) -> None:
        self.seen[r].setdefault(tuple(gram[:-1]), set()).add(gram[-1])

    def add(self, r: int, token: int) -> None:
        if not self.size:
            return
        seq = self.seqs[r]
        seq.append(token)
        if len(seq) >= self.size:
            self._record(r, seq[-self.size :])

    def for_rows(self, rows: list[int]) -> list[list[int]]:
        if not self.size:
            return [[] for _ in rows]
        return [sorted(self.seen[r].get(tuple(self.seqs[r][len(self.seqs[r]) - self.size + 1 :]), ())) if self.size > 1
                else sorted(set(self.seqs[r])) for r in rows]


def pack_output_layer(model):
    """On a CPU, run the output layer through oneDNN with its weight packed once.

    The output layer (vocabulary x hidden: 49,152 x 576 for SmolLM2) is the largest
    matmul of a decoding step and memory-bound at small batches. With the weight in
    oneDNN's own layout it took 38 ms instead of 83 ms at 64 rows here (a quarter of a
    step). torch.utils.mkldnn.MkldnnLinear does the same through TorchScript; this is
    that module's forward, kept plain. Other matmuls gained nothing, so they stay.
    Returns the model, changed in place where it applies.
    """
    import torch

    head = model.get_output_embeddings()
    if (next(model.parameters()).device.type != "cpu" or not torch.backends.mkldnn.is_available()
            or type(head) is not torch.nn.Linear or head.weight.dtype != torch.float32):
        return model
    model.set_output_embeddings(_packed_linear_class()(head))
    return model


@lru_cache(maxsize=1)  # defined on first use: torch is imported where it is used
def _packed_linear_class():
    import torch

    class PackedLinear(torch.nn.Module):
        def __init__(self, dense):
            super().__init__()
            self.in_features, self.out_features = dense.in_features, dense.out_features
            self.packed = dense.weight.detach().to_mkldnn()
            bias = dense.bias.detach() if dense.bias is not None else torch.zeros(dense.out_features)
            self.bias = bias.to_mkldnn()

        def forward(self, x):
            flat = x.reshape(-1, self.in_features).contiguous().to_mkldnn()
            out = torch._C._nn.mkldnn_linear(flat, self.packed, self.bias).to_dense()
            return out.reshape(*x.shape[:-1], self.out_features)

    return PackedLinear


def preallocated_cache(config, capacity: int):
    """A DynamicCache whose layers write into buffers sized for the whole story.

    transformers' DynamicLayer appends with `torch.cat`, copying every layer's cache at
    every step (a tenth of a decoding step at batch 64 here). Writing in place avoids
    that. Models with other layer kinds (sliding windows) keep the stock cache.
    """
    from transformers import DynamicCache

    cache = DynamicCache(config=config)
    if preallocatable(config):
        cache.layers = [_preallocated_layer_class()(capacity) for _ in cache.layers]
    return cache


def preallocatable(config) -> bool:
    """Whether every layer of the model's cache is a plain growing one (no sliding windows)."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    return all(type(layer) is DynamicLayer for layer in DynamicCache(config=config).layers)


@lru_cache(maxsize=1)  # defined on first use: transformers is imported where it is used
def _preallocated_layer_class():
    from transformers.cache_utils import DynamicLayer

    class PreallocatedLayer(DynamicLayer):
        def __init__(self, capacity: int):
            super().__init__()
            self.capacity, self.length = capacity, 0

        def update(self, key_states, value_states, *args, **kwargs):
            import torch

            if not self.is_initialized:
                b, h, _, d = key_states.shape
                self.device = key_states.device
                self.k = torch.empty(b, h, self.capacity, d, dtype=key_states.dtype, device=self.device)
                self.v = torch.empty(b, h, self.capacity, d, dtype=value_states.dtype, device=self.device)
                self.is_initialized = True
            n = key_states.shape[-2]
            if self.length + n > self.capacity:
                raise RuntimeError(f"cache of {self.capacity} tokens is full")
            self.k[:, :, self.length : self.length + n] = key_states
            self.v[:, :, self.length : self.length + n] = value_states
            self.length += n
            self._views()
            return self.keys, self.values

        def _views(self):
            self.keys, self.values = self.k[:, :, : self.length], self.v[:, :, : self.length]

        def write_rows(self, index, keys, values, column: int) -> None:
            n = keys.shape[-2]
            self.k[index, :, column : column + n] = keys
            self.v[index, :, column : column + n] = values

        def batch_select_indices(self, indices) -> None:
            if self.length:  # copy only the filled columns: the buffers are sized for the whole chunk
                k = self.k.new_empty((len(indices), *self.k.shape[1:]))
                v = self.v.new_empty((len(indices), *self.v.shape[1:]))
                k[:, :, : self.length] = self.k[indices, :, : self.length]
                v[:, :, : self.length] = self.v[indices, :, : self.length]
                self.k, self.v = k, v
                self._views()

    return PreallocatedLayer

