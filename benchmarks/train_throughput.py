"""Training throughput: taletune's train step against a plain transformers Trainer at the
same precision, with the held-out loss each reaches beside its speed.

    TALETUNE_GUTENBERG_MIRROR=../shared/gutenberg .venv/bin/python benchmarks/train_throughput.py --steps 6 --repeats 3

Both fine-tune SmolLM2-135M with PEFT LoRA (r=16 on q_proj and v_proj) on the same rows
(demo-dataset passages in 256-token blocks), batch 8, one pass over steps x 8 rows. The
baseline is `transformers.Trainer` with `DataCollatorForSeq2Seq(padding="longest")`;
taletune is `components.train.fit.train_step` over length-grouped batches, eager and
with its decoder layers under `torch.compile` (`train.compile`; the compilation is timed
apart). Each precision runs against its own baseline: fp32 against an fp32 Trainer, and,
where the CPU has native bf16 (or `--precisions` forces it), bf16 autocast
(`precision: bf16-mixed`) against `Trainer(bf16=True)`. Runs alternate, so drift on a
shared machine hits all alike; the script prints medians, ratios, the validation loss
after the pass, and model FLOPs utilisation (MFU) against the matmul peak of the
precision in use, measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def matmul_peak(seconds: float = 3.0, dtype=None) -> float:
    """GFLOP/s of a 2048x2048 matmul on this machine, now, in `dtype` (default fp32)."""
    import torch

    a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
    a @ b
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        n += 1
    return 2 * 2048**3 * n / (time.perf_counter() - start) / 1e9


def flops_per_token(model) -> float:
    """Forward 2N plus backward 2N (activation gradients; frozen weights get none), N without embeddings."""
    base = model.get_base_model()
    n = sum(p.numel() for name, p in base.named_parameters() if "embed_tokens" not in name)
    n += base.get_output_embeddings().weight.numel()  # tied with the embeddings, but a real matmul
    return 4 * n


def fresh_model(config):
    import torch

    from components.train.fit import attach_lora
    from components.common.models import load_base

    torch.manual_seed(0)
    model, tokenizer, _ = load_base(config.model, None, "fp32")
    return attach_lora(model, config), tokenizer


def run_trainer(config, examples, val, amp=None) -> tuple[float, int, float]:
    """(seconds, tokens, validation loss after the pass) of a plain Trainer; bf16=True under `amp`."""
    from datasets import Dataset
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from components.train.fit import evaluate

    model, tokenizer = fresh_model(config)
    data = Dataset.from_list([{"input_ids": e.input_ids, "labels": e.labels} for e in examples])
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=config.batch_size, num_train_epochs=1, learning_rate=config.learning_rate,
            lr_scheduler_type="constant", save_strategy="no", report_to=[], logging_steps=10_000, use_cpu=True,
            dataloader_num_workers=0, disable_tqdm=True, seed=0, bf16=amp is not None,
        )
        trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=DataCollatorForSeq2Seq(tokenizer, padding="longest"))
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    return seconds, sum(len(e.input_ids) for e in examples), evaluate(model, val, tokenizer, amp=amp)["val_loss"]


def run_taletune(config, examples, val, compile: bool = False, amp=None) -> tuple[float, int, float]:
    """taletune's train step; with `compile`, the decoder layers go through torch.compile
    (as `train.compile` does) and the first batch, which pays for the compilation, is
    timed apart and left out of the rate (both runs see every row); `amp` is an autocast
    dtype (`train.precision: bf16-mixed`)."""
    import random

    import torch

    from components.train import data as D
    from components.train.fit import compile_decoder, evaluate, train_step

    model, tokenizer = fresh_model(config)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate)
    order = list(range(len(examples)))
    random.Random(0).shuffle(order)
    batches = D.batches(order, examples, config.batch_size)
    if compile:
        compile_decoder(model)
        start = time.perf_counter()
        train_step(model, optimizer, [batches[0]], examples, tokenizer.pad_token_id, amp)
        print(f"  (compile and first step: {time.perf_counter() - start:.0f} s, not counted)", flush=True)
        batches = batches[1:]
    tokens, start = 0, time.perf_counter()
    for batch in batches:
        tokens += train_step(model, optimizer, [batch], examples, tokenizer.pad_token_id, amp)[1]
    seconds = time.perf_counter() - start
    return seconds, tokens, evaluate(model, val, tokenizer, amp=amp)["val_loss"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dataset", help="a dataset stage output folder (default: build the demo dataset from the mirror)")
    parser.add_argument("--val-rows", type=int, default=16, help="validation rows scored after each pass")
    parser.add_argument("--precisions", help="comma-separated, of fp32 and bf16-mixed (autocast); default: fp32, and "
                        "bf16-mixed where the CPU has native bf16 (emulated bf16 is about 400 times slower than fp32)")
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile run (its first compile takes minutes)")
    args = parser.parse_args()

    import torch
    from transformers import AutoTokenizer

    from components.common.models import native_cpu_bf16, resolve
    from components.train import data as D
    from components.train.config import TrainConfig
    from components.train.data import read_split
    from quality import demo_dataset

    native = native_cpu_bf16()
    precisions = args.precisions.split(",") if args.precisions else ["fp32", *(["bf16-mixed"] if native else [])]
    config = TrainConfig(block_size=256, batch_size=8)
    tokenizer = AutoTokenizer.from_pretrained(resolve(config.model))
    dataset = demo_dataset(args.dataset)
    examples = [D.encode(r, tokenizer, config.block_size) for r in read_split(dataset, "train")[: args.steps * config.batch_size]]
    val = [D.encode(r, tokenizer, config.block_size) for r in read_split(dataset, "validation")[: args.val_rows]]
    lengths = [len(e.input_ids) for e in examples]
    print(f"{len(examples)} rows, tokens per row: min {min(lengths)}, median {statistics.median(lengths)}, max {max(lengths)}; "
          f"{torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}, native bf16: {native}")

    runs = []
    for p in precisions:
        amp = torch.bfloat16 if p == "bf16-mixed" else None
        runs += [(("Trainer", p), lambda amp=amp: run_trainer(config, examples, val, amp)),
                 (("taletune", p), lambda amp=amp: run_taletune(config, examples, val, amp=amp))]
        if not args.no_compile:
            runs.append((("compiled", p), lambda amp=amp: run_taletune(config, examples, val, compile=True, amp=amp)))
    results: dict[tuple[str, str], list[tuple[float, float]]] = {name: [] for name, _ in runs}
    for _ in range(args.repeats):  # alternate, so drift on a shared machine hits all alike
        for name, fn in runs:
            seconds, tokens, loss = fn()
            results[name].append((tokens / seconds, loss))
            print(f"  {name[0]:9s} {name[1]:10s} {tokens / seconds:7.1f} tokens/s ({seconds:.1f} s), validation loss {loss:.4f}", flush=True)

    model, _ = fresh_model(config)
    per_token = flops_per_token(model)
    peaks = {p: matmul_peak(dtype=torch.bfloat16 if p == "bf16-mixed" else torch.float32) for p in precisions}
    print(f"\n{'run':9s} {'precision':10s} {'tokens/s':>9s}  {'runs':22s} {'val loss':>8s}  {'MFU':>5s}  vs Trainer at the same precision")
    for (name, p), values in results.items():
        rate = statistics.median(v[0] for v in values)
        loss = statistics.median(v[1] for v in values)
        base = statistics.median(v[0] for v in results[("Trainer", p)])
        print(f"{name:9s} {p:10s} {rate:9.1f}  {', '.join(f'{v[0]:.1f}' for v in values):22s} {loss:8.4f}  "
              f"{rate * per_token / 1e9 / peaks[p]:5.1%}  {rate / base:.2f}x")
    print(f"\nmatmul peak measured now: {', '.join(f'{p} {g:.0f} GFLOP/s' for p, g in peaks.items())}; {per_token / 1e6:.0f} MFLOP per token")


if __name__ == "__main__":
    main()
