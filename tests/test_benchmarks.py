"""The benchmarks' own arithmetic: what they count and how they read other tools' output."""

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from generate_throughput import decode_rate, new_tokens  # noqa: E402
from quality import perplexity  # noqa: E402


class Counting:
    """A model sure that token t is followed by t + 1 (logit 10 there, 0 elsewhere)."""

    def __init__(self, vocab: int):
        import torch

        self.vocab, self.weight = vocab, torch.nn.Parameter(torch.zeros(1))

    def parameters(self):
        return iter([self.weight])

    def __call__(self, input_ids):
        import torch
        from types import SimpleNamespace

        logits = torch.zeros(*input_ids.shape, self.vocab)
        logits.scatter_(-1, ((input_ids + 1) % self.vocab)[..., None], 10.0)
        return SimpleNamespace(logits=logits)


class Words:
    """A tokenizer of words `w<number>`, one token each."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [int(w[1:]) for w in text.split()]}


def test_perplexity_scores_each_windows_second_half_against_the_next_token():
    vocab, ctx = 50, 8
    # Each window: four tokens the model gets wrong, then a run it gets right. Only the
    # second half is scored (3 predictions a window, within it): a shifted target or
    # the first half scored would count wrong guesses.
    windows = [[40, 7, 33, 2, a, a + 1, a + 2, a + 3] for a in (10, 20, 30)]
    text = " ".join(f"w{t}" for w in windows for t in w)
    right = math.exp(10) / (math.exp(10) + vocab - 1)
    assert perplexity(Counting(vocab), Words(), text, ctx=ctx) == pytest.approx(1 / right, rel=1e-5)
    assert perplexity(Counting(vocab), Words(), text + " w1 w2", ctx=ctx, batch=2) == pytest.approx(1 / right, rel=1e-5), "a part window is left out"
    with pytest.raises(ValueError, match="fewer than one window"):
        perplexity(Counting(vocab), Words(), "w1 w2 w3", ctx=ctx)


def test_new_tokens_stop_at_the_first_end_of_story_token():
    assert new_tokens([5, 6, 2, 7, 2], {2}) == 2
    assert new_tokens([5, 6, 7], {2, 3}) == 3
    assert new_tokens([3, 5], {2, 3}) == 0


BATCHED_BENCH = """
main: n_kv_max = 22272, n_batch = 2048, n_ubatch = 512, flash_attn = auto, is_pp_shared = 1, n_gpu_layers = -1, n_threads = 2

|    PP |     TG |    B |   N_KV |   T_PP s | S_PP t/s |   T_TG s | S_TG t/s |      T s |    S t/s |
|-------|--------|------|--------|----------|----------|----------|----------|----------|----------|
|    20 |    200 |    1 |    220 |    0.085 |   234.07 |    9.420 |    21.23 |    9.505 |    23.14 |
|    20 |    200 |  100 |  22000 |    0.085 |   234.07 |  129.420 |   154.54 |  129.505 |   154.59 |
"""


def test_the_decoding_rate_is_read_from_the_row_of_the_batch():
    assert decode_rate(BATCHED_BENCH, 100) == 154.54
    assert decode_rate(BATCHED_BENCH, 1) == 21.23
    with pytest.raises(RuntimeError, match="no row for 64 sequences"):
        decode_rate(BATCHED_BENCH, 64)
