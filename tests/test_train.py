"""The train stage on a tiny random Llama: masking, packing, levels, resume, bad input."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from components.common.errors import TaletuneError
from components.train import data as D
from components.train.config import Level, TrainConfig
from components.train.fit import lr_at, run_train, schedule
from tests.conftest import ROOT, free_port, kill_then_rerun
from tests.tiny import make_dataset, make_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return make_model(root / "model"), make_dataset(root / "data")


def config(tiny_model, tmp_path, **kw) -> TrainConfig:
    settings = dict(model=str(tiny_model), batch_size=4, block_size=64, learning_rate=5e-3, checkpoint_every=3,
                    max_eval_rows=16, checkpoint_root=str(tmp_path / "ckpt"))
    return TrainConfig(**{**settings, **kw})


def test_loss_is_on_the_response_only(tiny):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny[0])
    row = {"prompt": "Write me a story", "response": "the night was dark"}
    ex = D.encode(row, tok, block_size=64)
    trained = [t for t, label in zip(ex.input_ids, ex.labels) if label != D.IGNORE]
    assert tok.decode(trained) == "the night was dark</s>"
    assert ex.labels[: ex.labels.index(trained[0])] == [D.IGNORE] * ex.labels.index(trained[0])
    assert tok.decode(ex.input_ids[: ex.labels.index(trained[0])]) == "### Human: Write me a story \n ### Assistant: "
    assert len(D.encode(row, tok, block_size=8).input_ids) == 8


def test_chat_format_masks_the_template_and_ends_the_turn(tiny):
    from transformers import AutoTokenizer

    from components.common.prompts import prompt_ids

    tok = AutoTokenizer.from_pretrained(tiny[0])
    row = {"prompt": "Write me a story", "response": "the night was dark"}
    with pytest.raises(TaletuneError, match="has none, so use llama or falcon"):
        D.encode(row, tok, 64, "chat")
    tok.chat_template = ("{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>\n{% endfor %}"
                         "{% if add_generation_prompt %}<s>assistant\n{% endif %}")
    ex = D.encode(row, tok, 64, "chat")
    first = next(i for i, label in enumerate(ex.labels) if label != D.IGNORE)
    assert tok.decode(ex.input_ids[:first]) == "<s>user\nWrite me a story</s>\n<s>assistant\n"
    assert ex.input_ids[:first] == prompt_ids("chat", "Write me a story", tok), "generation starts where training's prompt ends"
    assert tok.decode(ex.input_ids[first:]) == "the night was dark</s>", "the turn's end is the EOS; no second one"


def test_packing_fills_blocks_and_keeps_masks():
    examples = [D.Example([1, 2, 3], [D.IGNORE, 2, 3]), D.Example([4, 5, 6, 7], [D.IGNORE, D.IGNORE, 6, 7]), D.Example([8, 9], [8, 9])]
    packed = D.pack(examples, block_size=4)
    assert [p.input_ids for p in packed] == [[1, 2, 3, 4], [5, 6, 7, 8]]
    assert [p.labels for p in packed] == [[D.IGNORE, 2, 3, D.IGNORE], [D.IGNORE, 6, 7, 8]]


def test_nested_levels_are_prefixes_of_one_run(tiny, tmp_path):
    examples = [D.Example([1] * (i % 7 + 1), [1] * (i % 7 + 1)) for i in range(48)]
    micro, ends = schedule(examples, config(tiny[0], tmp_path), TrainConfig().levels)
    assert ends == [4, 12, 36]  # 30% of an epoch, one epoch, three epochs of 48 rows at batch 4
    for epoch in range(3):
        seen = sorted(i for batch in micro[epoch * 12 : (epoch + 1) * 12] for i in batch)
        assert seen == list(range(48)), "each epoch sees every row once"
    independent = config(tiny[0], tmp_path, mode="independent")
    micro, ends = schedule(examples, independent, [Level(fraction=0.3, epochs=2)])
    assert ends == [8] and len({i for b in micro for i in b}) == 15


def test_learning_rate_schedules():
    cfg = TrainConfig(learning_rate=1.0, warmup_ratio=0.1)
    assert [round(lr_at(s, 100, cfg, decay=False), 2) for s in (0, 9, 10, 99)] == [0.1, 1.0, 1.0, 1.0]
    assert [round(lr_at(s, 100, cfg, decay=True), 2) for s in (0, 9, 10, 55, 99)] == [0.1, 1.0, 1.0, 0.5, 0.01]


def test_levels_train_and_load_with_plain_peft(tiny, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    summary = run_train(tiny[1], config(tiny[0], tmp_path), tmp_path / "out")
    losses = [summary[k]["val_loss"] for k in range(4)]
    assert losses == sorted(losses, reverse=True) and losses[3] < losses[0], losses
    assert [summary[k]["samples_seen"] for k in (1, 2, 3)] == [15, 48, 144]
    assert not (tmp_path / "out" / "level-0" / "adapter_config.json").exists()
    rows = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 37))

    # Plain PEFT, no project code: the adapter reproduces the recorded validation loss.
    level = tmp_path / "out" / "level-3"
    assert json.loads((level / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny[0])
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny[0]), level).eval()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny[0])
    val = [D.encode(r, tok, 64) for r in D.read_split(tiny[1], "validation")[:16]]
    from components.train.fit import evaluate

    assert evaluate(model, val, tok)["val_loss"] == pytest.approx(summary[3]["val_loss"], rel=1e-5)
    base = AutoModelForCausalLM.from_pretrained(tiny[0]).eval()
    ids = torch.tensor([val[0].input_ids])
    assert not torch.allclose(model(ids).logits, base(ids).logits)


def _adapters(out: Path) -> dict:
    from safetensors.torch import load_file

    return {k: load_file(out / f"level-{k}" / "adapter_model.safetensors") for k in (1, 2, 3)}


def assert_same_adapters(a: Path, b: Path, atol: float = 1e-6) -> None:
    import torch

    left, right = _adapters(a), _adapters(b)
    for k in left:
        assert left[k].keys() == right[k].keys()
        for name in left[k]:
            assert torch.allclose(left[k][name], right[k][name], atol=atol), f"level {k} {name} differs"


# Both arithmetics, whatever this CPU does natively: a resumed run on the same machine
# repeats the uninterrupted one exactly in bf16 autocast too.
@pytest.mark.parametrize("precision", ["fp32", "bf16-mixed"])
def test_an_interrupted_run_resumes_to_the_same_adapters(tiny, tmp_path, precision):
    run_train(tiny[1], config(tiny[0], tmp_path / "a", precision=precision), tmp_path / "a" / "out")
    interrupted = config(tiny[0], tmp_path / "b", precision=precision)
    with pytest.raises(InterruptedError):
        run_train(tiny[1], interrupted, tmp_path / "b" / "out", stop_after_steps=17)
    run_train(tiny[1], interrupted, tmp_path / "b" / "out2")
    assert_same_adapters(tmp_path / "a" / "out", tmp_path / "b" / "out2")
    rows = (tmp_path / "b" / "out2" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows] == list(range(1, 37)), "the loss history survives the interruption"


def test_finished_levels_are_never_trained_again(tiny, tmp_path, caplog):
    cfg = config(tiny[0], tmp_path)
    first = run_train(tiny[1], cfg, tmp_path / "one")
    with caplog.at_level("INFO"):
        second = run_train(tiny[1], cfg, tmp_path / "two")
    assert "reused: every level" in caplog.text and "no model loaded" in caplog.text
    assert {k: v["val_loss"] for k, v in first.items()} == {k: v["val_loss"] for k, v in second.items()}
    assert all(v["reused"] for v in second.values()) and not any(v.get("reused") for v in first.values())
    assert json.loads((tmp_path / "two" / "run.json").read_text())["reused"] is True
    assert json.loads((tmp_path / "one" / "run.json").read_text())["reused"] is False
    assert json.loads((tmp_path / "two" / "level-0" / "training.json").read_text())["format"] == "llama"
    assert_same_adapters(tmp_path / "one", tmp_path / "two")


def test_independent_levels(tiny, tmp_path):
    cfg = config(tiny[0], tmp_path, mode="independent", levels=[{"fraction": 0.5, "epochs": 1}, {"fraction": 1.0, "epochs": 2}])
    summary = run_train(tiny[1], cfg, tmp_path / "out")
    assert [summary[k]["steps"] for k in (1, 2)] == [6, 24]
    assert summary[2]["val_loss"] < summary[0]["val_loss"]


def test_sigkill_mid_training_then_rerun_resumes(tiny, tmp_path):
    """A real SIGKILL of the CLI, then the same command again: same adapters as no kill."""
    data = make_dataset(tmp_path / "data", rows_per_genre=120)
    args = [sys.executable, "-m", "components.train", "--dataset", str(data), "--set", f"model={tiny[0]}",
            "--set", "batch_size=2", "--set", "block_size=64", "--set", "checkpoint_every=5", "--set", "learning_rate=5e-3"]
    env = {**os.environ, "TALETUNE_CACHE": str(tmp_path / "cache-killed")}
    state = tmp_path / "cache-killed" / "checkpoints"

    def past_level_1():  # then half a second more, so the kill lands mid-way to level 2
        if list(state.rglob("level-1/training.json")):
            time.sleep(0.5)
            return True
        return False

    resumed = kill_then_rerun(args, env, past_level_1, "training", tmp_path / "killed", tmp_path / "resumed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in resumed.stderr
    # The uninterrupted run, in this process (the same settings the command line was given).
    clean = TrainConfig(model=str(tiny[0]), batch_size=2, block_size=64, checkpoint_every=5, learning_rate=5e-3,
                        checkpoint_root=str(tmp_path / "cache-clean"))
    run_train(data, clean, tmp_path / "clean")
    assert_same_adapters(tmp_path / "clean", tmp_path / "resumed")


@pytest.mark.parametrize("settings, message", [
    ({"model": "no-such-alias"}, "unknown model 'no-such-alias'"),
    ({"model": "/nowhere/model"}, "unknown model"),
    ({"lora": {"target_modules": ["query_key_value"]}}, "LoRA target query_key_value matches no module"),
    ({"block_size": 4096}, "over .* context of 256"),
    ({"checkpoint_root": "s3://no-such-bucket/ckpt"}, "bucket 'no-such-bucket' does not exist"),
])
def test_bad_input_is_one_clear_error(tiny, tmp_path, settings, message, s3):
    with pytest.raises(TaletuneError, match=message):
        run_train(tiny[1], config(tiny[0], tmp_path).model_copy(update=settings) if "lora" not in settings
                  else config(tiny[0], tmp_path, **settings), tmp_path / "out")


@pytest.mark.parametrize("levels, message", [
    ([{"fraction": 0, "epochs": 1}], "greater than 0"),
    ([{"fraction": 1.5, "epochs": 1}], "less than or equal to 1"),
    ([{"fraction": 1, "epochs": 0}], "greater than 0"),
    ([{"fraction": 1, "epochs": 3}, {"fraction": 1, "epochs": 1}], "must grow"),
])
def test_bad_levels(levels, message):
    from components.common.config import validate

    with pytest.raises(TaletuneError, match=message):
        validate(TrainConfig, {"levels": levels})


def test_dataset_without_its_columns(tiny, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "data").mkdir()
    pq.write_table(pa.table({"prompt": ["p"], "text": ["t"]}), tmp_path / "data" / "train.parquet")
    with pytest.raises(TaletuneError, match="no response, label column"):
        run_train(tmp_path, config(tiny[0], tmp_path), tmp_path / "out")


def test_merge_gives_the_same_outputs_as_base_plus_adapter(tiny, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from components.train.merge import merge

    run_train(tiny[1], config(tiny[0], tmp_path), tmp_path / "out")
    merged = AutoModelForCausalLM.from_pretrained(merge(tmp_path / "out" / "level-3", tmp_path / "merged")).eval()
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny[0]), tmp_path / "out" / "level-3").eval()
    ids = torch.tensor([[1, 5, 9, 13, 17]])
    assert torch.allclose(merged(ids).logits, adapted(ids).logits, atol=1e-5)
    with pytest.raises(TaletuneError, match="level 0 is the base model"):
        merge(tmp_path / "out" / "level-0", tmp_path / "m0")


# What data parallel promises depends on the arithmetic (README, "What is reproducible").
# In fp32 two processes give one process's adapters to float rounding. In bf16 autocast
# each process's half batch rounds differently from the whole batch, so the adapters
# agree only to bf16's precision: measured here, the worst element of a tensor parts by
# 0.6% of the tensor's largest after 12 steps and 9% after 36, while the validation
# losses agree to the fifth digit. Both start two processes under accelerate (25 s and
# 75 s), so both are slow, to keep `make test` under ten minutes: `make test-all`.
@pytest.mark.slow
@pytest.mark.parametrize("precision, atol", [("fp32", 1e-5), ("bf16-mixed", None)])
def test_two_processes_under_accelerate_match_one(tiny, tmp_path, precision, atol):
    """`accelerate launch` with 2 CPU processes (gloo) gives the single process's adapters."""
    args = ["-m", "components.train", "--dataset", str(tiny[1]), "--set", f"model={tiny[0]}", "--set", "batch_size=4",
            "--set", "block_size=64", "--set", "learning_rate=5e-3", "--set", "lora.dropout=0", "--set", f"precision={precision}"]
    one = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one")], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "TALETUNE_CACHE": str(tmp_path / "c1")})
    assert one.returncode == 0, one.stderr[-3000:]
    # `--multi_gpu` selects the torchrun launcher; with no GPU, accelerate uses gloo (MULTI_CPU).
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port())]
    two = subprocess.run([*launch, *args, "--out", str(tmp_path / "two")], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "TALETUNE_CACHE": str(tmp_path / "c2")}, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "data parallel over 2 processes (this is rank 1)" in two.stderr
    if atol is not None:
        assert_same_adapters(tmp_path / "one", tmp_path / "two", atol=atol)
    else:
        assert_close_in_bf16(tmp_path / "one", tmp_path / "two")


def assert_close_in_bf16(a: Path, b: Path) -> None:
    left, right = _adapters(a), _adapters(b)
    for k in left:
        for name in left[k]:
            gap = (left[k][name] - right[k][name]).abs().max() / left[k][name].abs().max().clamp_min(1e-12)
            assert gap < 0.2, f"level {k} {name} parts by {float(gap):.1%} of its largest element"
        worst = max(float((left[k][n] - right[k][n]).abs().max() / left[k][n].abs().max().clamp_min(1e-12)) for n in left[k])
        loss = [json.loads((run / f"level-{k}" / "training.json").read_text())["val_loss"] for run in (a, b)]
        print(f"level {k}: worst element gap {worst:.1%} of its tensor's largest; validation loss {loss[0]:.5f} vs {loss[1]:.5f}")  # -s shows it
        assert abs(loss[0] - loss[1]) <= 1e-3 * abs(loss[0]), f"level {k} validation loss {loss}"


def test_falcon_7b_default_targets_give_the_reference_trainable_parameters():
    """r=16 on query_key_value of Falcon-7B: the reference's 4,718,592 (built on the meta device, no weights)."""
    import torch
    from transformers import FalconConfig, FalconForCausalLM

    from components.train.fit import attach_lora

    falcon = FalconConfig(hidden_size=4544, num_hidden_layers=32, num_attention_heads=71, multi_query=True,
                          new_decoder_architecture=False, parallel_attn=True, bias=False, vocab_size=65024)
    with torch.device("meta"):
        model = attach_lora(FalconForCausalLM(falcon), TrainConfig(model="tiiuae/falcon-7b-instruct"))
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 4_718_592


def test_bf16_mixed_trains_fp32_weights_under_autocast(tiny, tmp_path):
    import torch

    summary = run_train(tiny[1], config(tiny[0], tmp_path, precision="bf16-mixed", levels=[Level(fraction=1, epochs=1)]), tmp_path / "out")
    assert summary[1]["autocast"] == "bfloat16" and summary[0]["autocast"] == "bfloat16"
    assert summary[1]["val_loss"] < summary[0]["val_loss"]
    from safetensors.torch import load_file

    weights = load_file(tmp_path / "out" / "level-1" / "adapter_model.safetensors")
    assert {w.dtype for w in weights.values()} == {torch.float32}, "master weights stay fp32"


def test_compile_auto_compiles_on_a_cpu_only_for_runs_long_enough_to_pay_for_it(monkeypatch):
    import shutil

    import torch

    from components.train import fit
    from components.train.fit import COMPILE_MIN_TOKENS, compiles

    class Layers:  # where a Llama-style model keeps its decoder layers
        model = type("Decoder", (), {"layers": []})()

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the CPU rule, whatever this machine has
    rows = [D.Example([1] * 100, [1] * 100)] * (COMPILE_MIN_TOKENS // 300 + 1)  # just over a third of the threshold an epoch
    nested = TrainConfig(compile="auto")
    assert compiles(nested, Layers(), rows, [nested.levels]), "3 epochs of a third: the reference levels reach it"
    assert not compiles(nested, Layers(), rows, [[Level(fraction=1, epochs=2)]]), "2 epochs of a third do not"
    assert not compiles(nested, Layers(), rows, [[Level(fraction=0.3, epochs=1)], [Level(fraction=1, epochs=1)]]), "1.3 epochs in all"
    assert compiles(nested, Layers(), rows, [[Level(fraction=1, epochs=1)]] * 3), "independent runs add up"
    assert compiles(nested, Layers(), rows, [[Level(fraction=0.5, epochs=6)]]), "half the rows for 6 epochs is 3 epochs' worth"
    assert not compiles(nested, object(), rows, [nested.levels]), "no layers where taletune looks: eager"
    with pytest.raises(TaletuneError, match="train.compile: false"):
        compiles(TrainConfig(compile=True), object(), rows, [nested.levels])
    assert compiles(TrainConfig(compile=True), Layers(), rows[:1], [nested.levels])
    assert not compiles(TrainConfig(compile=False), Layers(), rows, [nested.levels])
    with monkeypatch.context() as patch:
        patch.setattr(shutil, "which", lambda name: None)
        assert not compiles(nested, Layers(), rows, [nested.levels]), "inductor needs a C++ compiler on a CPU"
        with pytest.raises(TaletuneError, match="needs a C\\+\\+ compiler .*apt-get install g\\+\\+"):
            compiles(TrainConfig(compile=True), Layers(), rows, [nested.levels])
    with monkeypatch.context() as patch:
        patch.setattr(fit.dist, "world", lambda: 2)
        assert not compiles(nested, Layers(), rows, [nested.levels]), "each of 2 processes trains half the tokens"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert not compiles(nested, Layers(), rows, [nested.levels]), "not by itself on a GPU, where it was not measured"


@pytest.mark.slow  # inductor's first compile takes a minute on this CPU
def test_compiled_decoder_gives_the_same_adapter_names(tiny, tmp_path):
    from safetensors.torch import load_file

    # No LoRA dropout: inductor draws its own random masks, so only then can the weights match.
    same = dict(levels=[Level(fraction=1, epochs=1)], lora={"dropout": 0.0})
    run_train(tiny[1], config(tiny[0], tmp_path / "a", **same), tmp_path / "eager")
    run_train(tiny[1], config(tiny[0], tmp_path / "b", compile=True, **same), tmp_path / "compiled")
    eager = load_file(tmp_path / "eager" / "level-1" / "adapter_model.safetensors")
    compiled = load_file(tmp_path / "compiled" / "level-1" / "adapter_model.safetensors")
    assert eager.keys() == compiled.keys()
    for name in eager:
        assert (eager[name] - compiled[name]).abs().max() < 1e-3, name


def test_a_checkpoint_that_would_run_code_is_refused(tiny, tmp_path):
    """Checkpoints come from shared storage: they load with weights_only=True."""
    import io

    import torch

    from components.common import storage
    from components.train.fit import _load_state

    buf = io.BytesIO()
    torch.save({"step": 1, "payload": Level(fraction=1, epochs=1)}, buf)  # an arbitrary pickled object
    storage.write_bytes(str(tmp_path / "state.pt"), buf.getvalue())
    with pytest.raises(TaletuneError, match="not a taletune checkpoint of plain tensors.*delete it"):
        _load_state(str(tmp_path / "state.pt"))


def test_an_empty_validation_split_still_trains_and_says_so(tiny, tmp_path):
    import shutil

    import pyarrow.parquet as pq

    from tests.conftest import run_cli

    data = tmp_path / "data"
    shutil.copytree(tiny[1], data)
    pq.write_table(pq.read_table(data / "data" / "validation.parquet").slice(0, 0), data / "data" / "validation.parquet")
    result = run_cli("components.train", "--dataset", str(data), "--out", str(tmp_path / "out"), "--set", f"model={tiny[0]}",
                     "--set", "block_size=64", "--set", "batch_size=8", "--set", "levels=[{fraction: 1.0, epochs: 1}]",
                     "--set", f"checkpoint_root={tmp_path / 'ckpt'}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "level 1: no validation rows" in result.stdout and (tmp_path / "out" / "level-1" / "adapter_model.safetensors").is_file()
