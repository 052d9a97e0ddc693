"""The benchmarks' own arithmetic: what they count and how they read other tools' output."""

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from generate_throughput import decode_rate, new_tokens  # noqa: E402
from quality import perplexity  # noqa: E402


class Uniform:
    """A model whose every next-token distribution is uniform over `vocab` tokens."""

    def __init__(self, vocab: int):
        import torch

        self.vocab, self.weight = vocab, torch.nn.Parameter(torch.zeros(1))

    def parameters(self):
        return iter([self.weight])

    def __call__(self, input_ids):
        import torch
        from types import SimpleNamespace

        return SimpleNamespace(logits=torch.zeros(*input_ids.shape, self.vocab))


class Words:
    """A tokenizer of words `w<number>`, one token each, within a vocabulary of `vocab`."""

    def __init__(self, vocab: int):
        self.vocab = vocab

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [int(w[1:]) % self.vocab for w in text.split()]}


def test_a_uniform_model_has_the_vocabulary_size_as_perplexity():
    text = " ".join(f"w{i}" for i in range(40))
    assert perplexity(Uniform(50), Words(50), text, ctx=16) == pytest.approx(50, rel=1e-6)
    assert math.isclose(perplexity(Uniform(7), Words(7), text, ctx=8, batch=2), 7, rel_tol=1e-6)
    with pytest.raises(ValueError, match="fewer than one window"):
        perplexity(Uniform(7), Words(7), "w1 w2 w3", ctx=8)


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
