"""The batched sampler against transformers' own greedy decoding.

`generate_batch` drives the model by hand: its own KV cache (preallocated layers,
rows selected in and out), position ids, an attention mask for refilled slots, and
the forward's keyword names. The other sampler tests compare it only with itself, so
a change in transformers' cache classes or forward signature (a renamed keyword is
swallowed by `**kwargs`, the cache silently unused) would pass them. Here greedy
decoding in fp32 must give, token for token, what `model.generate(do_sample=False)`
gives for each prompt alone, with refilled slots, a repetition penalty and an n-gram
ban. pyproject.toml pins transformers to the versions this file passes on.

The sampler takes prompts of one length per call (it never pads: the generate stage
batches prompts by token length), so each length is its own call here.
"""

from __future__ import annotations

import pytest

from components.generate.sampling import Sampling, generate_batch
from tests.tiny import make_model

NEW = 24  # new tokens per row: more than the longest prompt below
EOS = 2  # the tiny tokenizer's </s>
SHARPEN = 20  # query and key weights x 20: attention scores x 400


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(make_model(tmp_path_factory.mktemp("tiny") / "model"), dtype=torch.float32).eval()
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    # At initialisation (std 0.02) attention is nearly uniform, so a position off by one
    # or a column too many in the mask barely moves the logits. Sharpen it.
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.mul_(SHARPEN)
            layer.self_attn.k_proj.weight.mul_(SHARPEN)
    return model


def prompts(width: int, n: int = 5) -> list[list[int]]:
    """`n` prompts of `width` tokens (BOS first), all different but the last, which repeats the first."""
    rows = [[1, *((7 * i + 11 * j) % 290 + 3 for j in range(width - 1))] if width > 1 else [3 + 37 * i] for i in range(n - 1)]
    return [*rows, rows[0]]


def reference(model, prompt: list[int], sampling: Sampling, eos: set[int], new: int = NEW) -> tuple[list[int], str]:
    """transformers' greedy decoding of one prompt alone (no padding): (new tokens, finish reason)."""
    import torch
    from transformers import GenerationConfig

    config = GenerationConfig(do_sample=False, max_new_tokens=new, repetition_penalty=sampling.repetition_penalty,
                              no_repeat_ngram_size=sampling.no_repeat_ngram_size, eos_token_id=sorted(eos), pad_token_id=0)
    with torch.inference_mode():
        out = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long), generation_config=config)
    tokens = out[0, len(prompt):].tolist()
    if tokens and tokens[-1] in eos:
        return tokens[:-1], "eos"
    assert len(tokens) == new
    return tokens, "length"


def check(model, rows: list[list[int]], sampling: Sampling, eos: set[int], slots_options=(None, 2), new: int = NEW) -> list[tuple[list[int], str]]:
    """generate_batch over all rows, with each number of slots, gives what model.generate gives each row alone."""
    expected = [reference(model, p, sampling, eos, new) for p in rows]
    assert len({tuple(t) for t, _ in expected}) >= len({tuple(p) for p in rows}), "distinct prompts give distinct stories: the check has power"
    for slots in slots_options:
        got = generate_batch(model, rows, list(range(len(rows))), new, sampling, eos, slots=slots)
        for i, (row, (tokens, reason)) in enumerate(zip(got, expected)):
            assert row.tokens == tokens, f"row {i} (slots={slots}): sampler {row.tokens} != model.generate {tokens}"
            assert row.finish_reason == reason, f"row {i} (slots={slots})"
    return expected


@pytest.mark.parametrize("width", [1, 3, 8])
def test_greedy_matches_model_generate(model, width):
    """5 rows; with 2 slots the rows after the second wait and enter mid-cache (refill).
    Width 1 takes the path without refill (nothing to write before the last token)."""
    check(model, prompts(width), Sampling(greedy=True, repetition_penalty=1.0), {EOS})


@pytest.mark.parametrize("sampling", [
    Sampling(greedy=True, repetition_penalty=1.3),
    Sampling(greedy=True, repetition_penalty=1.0, no_repeat_ngram_size=3),
], ids=["repetition_penalty", "no_repeat_ngram"])
def test_greedy_with_penalties_matches_model_generate(model, sampling):
    """The penalty and the ban see the prompt too, in a refilled slot as in the first ones."""
    check(model, prompts(5), sampling, {EOS})


def test_rows_ending_at_different_steps_refill_one_by_one(model):
    """EOS made of tokens the stories reach at different steps: slots free up one at a
    time and each waiting row enters at a different cache column."""
    greedy = Sampling(greedy=True, repetition_penalty=1.0)
    rows = prompts(4, n=7)
    free = [reference(model, p, greedy, {EOS})[0] for p in rows]
    # For each story, a token first reached at step 3 + story number (if any), so the ends spread out.
    eos = {EOS} | {t[3 + i] for i, t in enumerate(free) if 3 + i < len(t) and t[3 + i] not in t[: 3 + i]}
    expected = check(model, rows, greedy, eos, slots_options=(None, 2, 3))
    ends = [len(t) for t, reason in expected if reason == "eos"]
    assert len(set(ends)) >= 3, f"rows should end at different steps: {ends}"

