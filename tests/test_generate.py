"""The generate stage: per-story random streams, resume, flags, bad input; tiny model and SmolLM2."""

import json
import os
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from components.common.errors import TaletuneError
from components.generate.config import GenerateConfig
from components.common.flags import dominant_ngram, flags, words
from components.generate.sampling import Sampling, choose, generate_batch
from components.generate.stage import run_generate
from components.common.catalog import load_catalog
from tests.conftest import kill_then_rerun, run_cli
from tests.tiny import make_dataset, make_model

CATALOG = load_catalog({"genres": {"horror": {"prompt": "Write me a horror story", "books": [1]},
                                   "fairy_tale": {"prompt": "Write me a fairy tale", "books": [2]}}})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def tiny_adapter(tiny, tmp_path_factory):
    """A level-1 adapter trained for a few steps on the tiny model."""
    from components.train.config import Level, TrainConfig
    from components.train.fit import run_train

    root = tmp_path_factory.mktemp("adapter")
    config = TrainConfig(model=str(tiny), batch_size=4, block_size=64, learning_rate=5e-3, max_eval_rows=8,
                         levels=[Level(fraction=1, epochs=1)], checkpoint_root=str(root / "ckpt"))
    run_train(make_dataset(root / "data"), config, root / "out")
    return root / "out"


def settings(tiny, tmp_path, **kw) -> GenerateConfig:
    base = dict(model=str(tiny), n=5, batch_size=2, chunk_size=3, sampling={"max_new_tokens": 12}, progress_root=str(tmp_path / "progress"))
    return GenerateConfig(**{**base, **kw})


def stories(folder: Path) -> list[dict]:
    lines = [json.loads(line) for line in (folder / "stories.jsonl").read_text().splitlines()]
    assert lines[0]["type"] == "header"
    return lines[1:]


def texts(folder: Path) -> list[tuple]:
    return [(s["id"], s["text"], s["new_tokens"], s["finish_reason"]) for s in stories(folder)]


# ------------------------------------------------------------------ sampling


def test_each_row_draws_from_its_own_stream():
    import torch

    logits = torch.randn(4, 50)
    history = torch.zeros(4, 1, dtype=torch.long)
    picks = [choose(logits.clone(), history, [torch.Generator().manual_seed(s) for s in (7, 8, 9, 10)], Sampling(), [[]] * 4)]
    # Row 2 alone, with its own seed, picks what it picked among others.
    alone = choose(logits[2:3].clone(), history[:1], [torch.Generator().manual_seed(9)], Sampling(), [[]])
    assert int(alone[0]) == int(picks[0][2])
    greedy = choose(logits.clone(), history, [None] * 4, Sampling(greedy=True), [[]] * 4)
    assert greedy.tolist() == logits.argmax(-1).tolist()


def test_top_k_one_is_greedy_and_bans_hold():
    import torch

    logits = torch.tensor([[0.0, 5.0, 1.0, 4.0]])
    gen = [torch.Generator().manual_seed(0)]
    none = torch.zeros(1, 0, dtype=torch.long)
    assert choose(logits.clone(), none, gen, Sampling(top_k=1, repetition_penalty=1.0), [[]]).item() == 1
    assert choose(logits.clone(), none, gen, Sampling(top_k=1, repetition_penalty=1.0), [[1]]).item() == 3
    # A penalty of 2 halves token 1's score (5 -> 2.5), so token 3 (4.0) wins.
    assert choose(logits.clone(), torch.tensor([[1]]), gen, Sampling(top_k=1, repetition_penalty=2.0), [[]]).item() == 3


def test_same_seeds_same_stories_and_rows_finish_alone(tiny):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny).eval()
    one = generate_batch(model, [[1, 5, 6]] * 4, [3, 4, 5, 6], 20, Sampling(), {2})
    two = generate_batch(model, [[1, 5, 6]] * 4, [3, 4, 5, 6], 20, Sampling(), {2})
    assert [r.tokens for r in one] == [r.tokens for r in two]
    assert len({tuple(r.tokens) for r in one}) > 1, "each row has its own stream"
    for r in one:
        assert r.finish_reason in ("eos", "length") and (r.finish_reason == "eos" or len(r.tokens) == 20)
        assert 2 not in r.tokens
    eos = {r.tokens[0] for r in one}  # make each row's first token end it
    short = generate_batch(model, [[1, 5, 6]] * 4, [3, 4, 5, 6], 20, Sampling(), eos)
    assert all(r.finish_reason == "eos" and r.tokens == [] for r in short)


def test_refilled_slots_write_what_a_full_batch_writes(tiny):
    """Rows that wait for a slot start mid-cache, with their own positions and a mask."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny).eval()
    prompts = [[1, 5 + i, 9] for i in range(7)]
    greedy = Sampling(greedy=True, repetition_penalty=1.0)
    full = generate_batch(model, prompts, list(range(7)), 9, greedy, {2})
    for slots in (1, 2, 3):
        assert [r.tokens for r in generate_batch(model, prompts, list(range(7)), 9, greedy, {2}, slots=slots)] == [r.tokens for r in full]
    # Sampled, with a common token as EOS: rows end at different steps, slots free up one by one.
    sampled = generate_batch(model, prompts, list(range(7)), 12, Sampling(), set())
    common = Counter(t for r in sampled for t in r.tokens).most_common(1)[0][0]
    staggered = generate_batch(model, prompts, list(range(7)), 12, Sampling(), {common})
    assert len({len(r.tokens) for r in staggered}) > 2
    assert [r.tokens for r in generate_batch(model, prompts, list(range(7)), 12, Sampling(), {common}, slots=2)] == [r.tokens for r in staggered]


def test_no_repeat_ngram_size_is_respected(tiny):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny).eval()
    rows = generate_batch(model, [[1, 5]] * 3, [0, 1, 2], 40, Sampling(greedy=True, no_repeat_ngram_size=2, repetition_penalty=1.0), set())
    for r in rows:
        seq = [1, 5, *r.tokens]
        grams = [tuple(seq[i : i + 2]) for i in range(len(seq) - 1)]
        assert len(grams) == len(set(grams))


# ------------------------------------------------------------------ flags


@pytest.mark.parametrize("text, expected", [
    ("", {"empty": True, "prompt_echo": False, "repetitive": False}),
    ("   \n ", {"empty": True, "prompt_echo": False, "repetitive": False}),
    ("### Human: Write me a horror story ### Assistant:", {"empty": False, "prompt_echo": True, "repetitive": False}),
    ("Write me a horror story. Write me a horror story", {"empty": False, "prompt_echo": True, "repetitive": False}),
    ("and then and then and then and then he ran", {"empty": False, "prompt_echo": False, "repetitive": True}),
    ("The door creaked. Mary held the candle higher and saw the stair was wet with something dark.",
     {"empty": False, "prompt_echo": False, "repetitive": False}),
])
def test_flags(text, expected):
    assert flags(text, "Write me a horror story") == expected


def test_dominant_ngram_golden():
    assert dominant_ngram(words("a b a b a b")) == (("a", "b"), 1.0)
    assert dominant_ngram(words("one two three")) == ((), 0.0)


# ------------------------------------------------------------------ the stage


def test_a_set_is_reproducible_and_complete(tiny, tmp_path):
    first = run_generate(CATALOG, settings(tiny, tmp_path / "a"), tmp_path / "a")
    again = run_generate(CATALOG, settings(tiny, tmp_path / "b"), tmp_path / "b")
    assert texts(tmp_path / "a") == texts(tmp_path / "b")
    records = stories(tmp_path / "a")
    assert [s["id"] for s in records] == [f"fairy_tale-{i:04d}" for i in range(5)] + [f"horror-{i:04d}" for i in range(5)]
    assert [s["seed"] for s in records[:5]] == [42, 43, 44, 45, 46]
    story = records[0]
    assert story["prompt"] == "Write me a fairy tale" and story["level"] == 0 and story["adapter"] is None
    assert story["settings"]["sampling"]["max_new_tokens"] == 12 and set(story["flags"]) == {"empty", "prompt_echo", "repetitive"}
    assert first["stories"] == 10 and first == {**again, "tokens_per_second": first["tokens_per_second"]}
    header = json.loads((tmp_path / "a" / "stories.jsonl").read_text().splitlines()[0])
    assert "torch" in header["packages"] and header["machine"]["cpus"]


# Every arithmetic, whatever this CPU does natively: chunks are written in the batches
# first chosen, so a resumed set equals the uninterrupted one with bf16 weights and in
# bf16 autocast too.
@pytest.mark.parametrize("precision", ["fp32", "bf16", "bf16-mixed"])
def test_an_interrupted_set_resumes_to_the_same_stories(tiny, tmp_path, precision):
    run_generate(CATALOG, settings(tiny, tmp_path / "clean", precision=precision), tmp_path / "clean")
    with pytest.raises(InterruptedError):
        run_generate(CATALOG, settings(tiny, tmp_path / "cut", precision=precision), tmp_path / "cut", stop_after_chunks=2)
    assert not (tmp_path / "cut" / "stories.jsonl").exists()
    # The resumed run may think it has less memory: the stored batch size still wins.
    run_generate(CATALOG, settings(tiny, tmp_path / "cut", batch_size=1, precision=precision), tmp_path / "cut")
    assert texts(tmp_path / "cut") == texts(tmp_path / "clean")
    assert {s["settings"]["batch_size"] for s in stories(tmp_path / "cut")} == {2}


def test_auto_samples_with_bf16_weights_where_bf16_is_native_and_keys_the_set_by_it(tiny, tmp_path, monkeypatch):
    import torch

    from components.common import models
    from components.generate import sampling
    from components.generate.stage import load_generator, set_key

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the CPU rule, whatever this machine has
    real, calls = sampling.generate_batch, []

    def recording(model, *args, **kwargs):  # what the stage hands the sampler: the weights' dtype and the autocast
        calls.append((next(model.parameters()).dtype, args[5] if len(args) > 5 else kwargs.get("amp")))
        return real(model, *args, **kwargs)

    monkeypatch.setattr(sampling, "generate_batch", recording)
    config = settings(tiny, tmp_path, precision="auto")
    keys = set()
    for native in (True, False):  # both, whatever this CPU does
        monkeypatch.setattr(models, "native_cpu_bf16", lambda native=native: native)
        weights = torch.bfloat16 if native else torch.float32
        model, _, _ = load_generator(config, None)
        assert next(model.parameters()).dtype == weights
        calls.clear()
        run_generate(CATALOG, settings(tiny, tmp_path, precision="auto", n=2, chunk_size=2), tmp_path / f"out-{native}")
        assert calls and set(calls) == {(weights, None)}, "bf16 weights where native, never autocast"
        keys.add(set_key(config, {"horror": "Write me a horror story"}, {"adapter_sha256": None}, str(tiny)))
    assert len(keys) == 2, "a set sampled with bf16 weights is not served for fp32, nor the other way"


def test_an_adapter_is_merged_in_fp32_before_the_weights_go_to_bf16(tiny, tiny_adapter, tmp_path):
    import torch

    from components.generate.stage import load_generator

    level = str(tiny_adapter / "level-1")
    merged32, _, _ = load_generator(settings(tiny, tmp_path, precision="fp32"), level)
    merged16, _, _ = load_generator(settings(tiny, tmp_path, precision="bf16"), level)
    w32, w16 = dict(merged32.named_parameters()), dict(merged16.named_parameters())
    assert w32 and set(w32) <= set(w16)  # fp32's packed output layer holds its weight outside the parameters
    for name in w32:
        assert w16[name].dtype == torch.bfloat16 and torch.equal(w16[name], w32[name].to(torch.bfloat16)), f"{name}: rounded once, after the merge"


def test_a_damaged_manifest_is_one_clear_error_and_keeps_the_finished_chunks(tiny, tmp_path):
    config = settings(tiny, tmp_path, precision="fp32")
    with pytest.raises(InterruptedError):
        run_generate(CATALOG, config, tmp_path / "out", stop_after_chunks=1)
    [manifest] = (tmp_path / "progress").rglob("manifest.json")
    manifest.write_text('{"batch_size": 2, "sett')  # cut short
    chunks = sorted(p.name for p in manifest.parent.glob("chunk-*.jsonl"))
    with pytest.raises(TaletuneError, match="manifest .* is damaged .*delete"):
        run_generate(CATALOG, config, tmp_path / "out")
    assert chunks and sorted(p.name for p in manifest.parent.glob("chunk-*.jsonl")) == chunks


def test_other_settings_start_a_fresh_set_and_keep_the_old(tiny, tmp_path, caplog):
    run_generate(CATALOG, settings(tiny, tmp_path), tmp_path / "out")
    old = (tmp_path / "out" / "stories.jsonl").read_text()
    run_generate(CATALOG, settings(tiny, tmp_path, seed=7), tmp_path / "out")
    assert "made with other settings are kept" in caplog.text
    kept = [p for p in (tmp_path / "out").glob("stories-*.jsonl")]
    assert len(kept) == 1 and kept[0].read_text() == old
    assert stories(tmp_path / "out")[0]["seed"] == 7
    # Back and forth: the first set is kept a second time under a new name, not over the first copy.
    run_generate(CATALOG, settings(tiny, tmp_path), tmp_path / "out")
    run_generate(CATALOG, settings(tiny, tmp_path, seed=7), tmp_path / "out")
    assert len(list((tmp_path / "out").glob("stories-*.jsonl"))) == 3 and kept[0].read_text() == old


def test_the_adapter_is_used_and_recorded(tiny, tiny_adapter, tmp_path):
    run_generate(CATALOG, settings(tiny, tmp_path), tmp_path / "base")
    run_generate(CATALOG, settings(tiny, tmp_path), tmp_path / "tuned", adapter=str(tiny_adapter / "level-1"))
    tuned = stories(tmp_path / "tuned")
    assert tuned[0]["level"] == 1 and tuned[0]["adapter"].endswith("level-1") and len(tuned[0]["adapter_sha256"]) == 64
    assert texts(tmp_path / "base") != texts(tmp_path / "tuned")
    run_generate(CATALOG, settings(tiny, tmp_path), tmp_path / "level0", adapter=str(tiny_adapter / "level-0"))
    assert texts(tmp_path / "level0") == texts(tmp_path / "base"), "level 0 is the base model"


@pytest.mark.parametrize("change, message", [
    ({"genres": ["western"]}, "genre western is not in the catalog; its genres are: fairy_tale, horror"),
    ({"sampling": {"max_new_tokens": 400}}, "over .* context of 256"),
])
def test_bad_input_is_one_clear_error(tiny, tmp_path, change, message):
    with pytest.raises(TaletuneError, match=message):
        run_generate(CATALOG, settings(tiny, tmp_path, **change), tmp_path / "out")


def test_the_vllm_backend_without_vllm_names_the_install(tiny, tmp_path):
    with pytest.raises(TaletuneError, match=r"vllm is not installed; install it with: pip install 'taletune\[vllm\]'"):
        run_generate(CATALOG, settings(tiny, tmp_path, backend="vllm"), tmp_path / "out")


def test_an_adapter_of_another_model_is_refused(tiny, tiny_adapter, tmp_path):
    other = make_model(tmp_path / "other", seed=1)
    with pytest.raises(TaletuneError, match="was trained on .*model, not .*other"):
        run_generate(CATALOG, settings(other, tmp_path), tmp_path / "out", adapter=str(tiny_adapter / "level-1"))


def test_the_adapters_prompt_format_is_used_and_another_refused(tiny, tiny_adapter, tmp_path):
    run_generate(CATALOG, settings(tiny, tmp_path), tmp_path / "out", adapter=str(tiny_adapter / "level-1"))
    assert stories(tmp_path / "out")[0]["format"] == "llama", "the format training.json records"
    with pytest.raises(TaletuneError, match="trained with prompt format 'llama', and this run asks for 'falcon'"):
        run_generate(CATALOG, settings(tiny, tmp_path, format="falcon"), tmp_path / "other", adapter=str(tiny_adapter / "level-1"))


def test_cli_errors_and_existing_stories_survive(tiny, tmp_path):
    result = run_cli("components.generate", "--out", str(tmp_path / "out"), "--set", "n=0")
    assert result.returncode == 2 and "n: Input should be greater than 0" in result.stderr and "Traceback" not in result.stderr
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "stories.jsonl").write_text('{"type": "header", "progress": "elsewhere"}\n')
    result = run_cli("components.generate", "--out", str(tmp_path / "out"), "--set", f"model={tiny}", "--set", "n=2",
                     "--set", "sampling.max_new_tokens=4", "--set", "genres=[western]")
    assert result.returncode == 2 and "genre western is not in the catalog" in result.stderr
    assert (tmp_path / "out" / "stories.jsonl").read_text() == '{"type": "header", "progress": "elsewhere"}\n'


def test_sigkill_mid_set_then_rerun_gives_the_same_set(tiny, tmp_path):
    args = [sys.executable, "-m", "components.generate", "--set", f"model={tiny}", "--set", "n=16", "--set", "batch_size=2", "--set", "chunk_size=4",
            "--set", "sampling.max_new_tokens=40"]
    env = {**os.environ, "TALETUNE_CACHE": str(tmp_path / "cache-killed")}
    progress = tmp_path / "cache-killed" / "stories"
    left = {}

    def note_finished_chunks():  # a chunk written again would be a new file (a new inode: writes are temp then rename)
        left.update({p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in progress.rglob("chunk-*.jsonl")})

    resumed = kill_then_rerun(args, env, lambda: bool(list(progress.rglob("chunk-*.jsonl"))), "set", tmp_path / "killed", tmp_path / "killed",
                              after_kill=note_finished_chunks)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 0 < len(left) < 8, "killed after some chunks and before the last"
    assert f"{len(left)} of 8 chunks written" in resumed.stderr
    for path in progress.rglob("chunk-*.jsonl"):
        if path.name in left:
            assert (path.stat().st_ino, path.stat().st_mtime_ns, path.read_bytes()) == left[path.name], f"{path.name} was written again"
    rewritten = re.findall(r"chunk (\d+) of 8 written", resumed.stderr)
    assert sorted(int(c) for c in rewritten) == [c + 1 for c in range(8) if f"chunk-{c:05d}.jsonl" not in left]
    # The uninterrupted set, in this process, with the settings the command line was given.
    clean = GenerateConfig(model=str(tiny), n=16, batch_size=2, chunk_size=4, sampling={"max_new_tokens": 40},
                           progress_root=str(tmp_path / "clean-progress"))
    run_generate(load_catalog(), clean, tmp_path / "clean")
    assert texts(tmp_path / "killed") == texts(tmp_path / "clean")


# ------------------------------------------------------------------ the real model


# A story told alone is computed in a batch of one; in its set it shares a batch. In fp32
# the two agree (batch size moves only the last float bits, too little to change a
# token here); in bf16 (weights or autocast) they part after a few tokens, so `--tell` says so.
# The set itself is the same from the same settings on the same machine in both.
def tell(capsys, monkeypatch, smollm2, *args: str):
    """`python -m components.generate --tell ...` in this process (a second start of
    torch and the model would cost seconds and test nothing more); (stdout, stderr)."""
    from components.generate.__main__ import main

    monkeypatch.setenv("TALETUNE_MODEL_CACHE", str(smollm2))
    capsys.readouterr()
    main(["--tell", "--genre", "horror", *args])
    out = capsys.readouterr()
    return out.out, out.err


def test_smollm2_writes_short_stories_and_tells_one(smollm2, tmp_path, capsys, monkeypatch):
    from transformers import AutoTokenizer

    from components.common.prompts import encode_pair, prompt_ids

    # SmolLM2-135M-Instruct speaks its own chat format: the prompt is a user turn, and a
    # training row's response ends with the end of the assistant's turn.
    tokenizer = AutoTokenizer.from_pretrained(smollm2 / "smollm2-135m")
    head, body = encode_pair("chat", "Write me a horror story", "It was dark.", tokenizer)
    assert tokenizer.decode(head).endswith("<|im_start|>user\nWrite me a horror story<|im_end|>\n<|im_start|>assistant\n")
    assert tokenizer.decode(body) == "It was dark.<|im_end|>" and body[-1] == tokenizer.eos_token_id
    assert head == prompt_ids("chat", "Write me a horror story", tokenizer)

    config = GenerateConfig(n=2, genres=["horror"], sampling={"max_new_tokens": 16}, model_cache=str(smollm2), precision="fp32",
                            progress_root=str(tmp_path / "progress"))
    summary = run_generate(load_catalog(), config, tmp_path / "out")
    records = stories(tmp_path / "out")
    assert summary["format"] == "chat" and records[0]["format"] == "chat", "the model's own format by default"
    assert summary["stories"] == 2 and [s["genre"] for s in records] == ["horror", "horror"]
    assert all(0 < s["new_tokens"] <= 16 for s in records) and records[0]["text"] != records[1]["text"]
    out, err = tell(capsys, monkeypatch, smollm2, "--story", "1", "--set", "sampling.max_new_tokens=16", "--set", "precision=fp32")
    assert out.startswith("[horror, story 1, level 0] Write me a horror story")
    assert " ".join(records[1]["text"].split()) in " ".join(out.split()), "story 1 told alone is story 1 of the set"
    assert "bf16" not in err


def test_smollm2_in_bf16_writes_the_same_set_twice_and_tells_one_with_a_warning(smollm2, tmp_path, capsys, monkeypatch):
    runs = []
    for name in ("a", "b"):
        config = GenerateConfig(n=2, genres=["horror"], sampling={"max_new_tokens": 12}, model_cache=str(smollm2),
                                precision="bf16-mixed", progress_root=str(tmp_path / name / "progress"))
        run_generate(load_catalog(), config, tmp_path / name)
        runs.append(texts(tmp_path / name))
    assert runs[0] == runs[1], "the same settings on the same machine give the same set in bf16"
    _, err = tell(capsys, monkeypatch, smollm2, "--story", "1", "--set", "sampling.max_new_tokens=4", "--set", "precision=bf16-mixed")
    assert "may part from story 1 of the set" in err and "precision=fp32" in err
