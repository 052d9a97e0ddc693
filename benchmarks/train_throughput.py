"""Training throughput: taletune's train step against a plain transformers Trainer.

    TALETUNE_GUTENBERG_MIRROR=../shared/gutenberg .venv/bin/python benchmarks/train_throughput.py --steps 8 --repeats 3

Both fine-tune SmolLM2-135M with PEFT LoRA (r=16 on q_proj and v_proj) in fp32 on the
same rows (demo-dataset passages in 256-token blocks), batch 8, one pass over
steps x 8 rows. The baseline is `transformers.Trainer` with
`DataCollatorForSeq2Seq(padding="longest")`; taletune is `components.train.fit.train_step`
over length-grouped batches. The script prints the median tokens/s of each, their ratio,
and model FLOPs utilisation (MFU) against an fp32 matmul peak measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def matmul_peak(seconds: float = 3.0) -> float:
    """fp32 GFLOP/s of a 2048x2048 matmul on this machine, now."""
    import torch

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
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


def rows(args) -> list[dict]:
    from components.dataset.config import DatasetConfig
    from components.dataset.stage import run_dataset
    from components.common.catalog import load_catalog
    from components.ingest.config import IngestConfig
    from components.ingest.stage import run_ingest
    from components.train.data import read_split

    if args.dataset:
        return read_split(args.dataset, "train")
    if not os.environ.get("TALETUNE_GUTENBERG_MIRROR"):
        sys.exit("set TALETUNE_GUTENBERG_MIRROR (e.g. ../shared/gutenberg) or pass --dataset")
    tmp = Path(tempfile.mkdtemp())
    run_ingest(load_catalog(), IngestConfig(offline=True), tmp / "books")
    run_dataset(tmp / "books", DatasetConfig(max_rows_per_genre=400), tmp / "data")
    return read_split(tmp / "data", "train")


def fresh_model(config):
    import torch

    from components.train.fit import attach_lora
    from components.common.models import load_base

    torch.manual_seed(0)
    model, tokenizer, _ = load_base(config.model, None, "fp32")
    return attach_lora(model, config), tokenizer


def run_trainer(config, examples) -> tuple[float, int]:
    from datasets import Dataset
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    model, tokenizer = fresh_model(config)
    data = Dataset.from_list([{"input_ids": e.input_ids, "labels": e.labels} for e in examples])
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=config.batch_size, num_train_epochs=1, learning_rate=config.learning_rate,
            lr_scheduler_type="constant", save_strategy="no", report_to=[], logging_steps=10_000, use_cpu=True,
            dataloader_num_workers=0, disable_tqdm=True, seed=0,
        )
        trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=DataCollatorForSeq2Seq(tokenizer, padding="longest"))
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    return seconds, sum(len(e.input_ids) for e in examples)


def run_taletune(config, examples, compile: bool = False, amp=None) -> tuple[float, int]:
    """taletune's train step; with `compile`, the decoder goes through torch.compile (as
    `train.compile: true` does) and the first batch, which pays for the compilation, is
    timed apart and left out; `amp` is an autocast dtype (`train.precision: bf16-mixed`)."""
    import random

    import torch

    from components.train import data as D
    from components.train.fit import train_step

    model, tokenizer = fresh_model(config)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate)
    order = list(range(len(examples)))
    random.Random(0).shuffle(order)
    batches = D.batches(order, examples, config.batch_size)
    if compile:
        model.get_base_model().model.compile()
        start = time.perf_counter()
        train_step(model, optimizer, [batches[0]], examples, tokenizer.pad_token_id, amp)
        print(f"  (compile and first step: {time.perf_counter() - start:.0f} s, not counted)", flush=True)
        batches = batches[1:]
    tokens, start = 0, time.perf_counter()
    for batch in batches:
        tokens += train_step(model, optimizer, [batch], examples, tokenizer.pad_token_id, amp)[1]
    return time.perf_counter() - start, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dataset", help="a dataset stage output folder (default: build the demo dataset from the mirror)")
    parser.add_argument("--compile", action="store_true", help="also time taletune with the decoder under torch.compile")
    parser.add_argument("--bf16", action="store_true", help="also time taletune under bf16 autocast (fast only on CPUs with AVX512-BF16 or AMX)")
    args = parser.parse_args()

    import torch
    from transformers import AutoTokenizer

    from components.train import data as D
    from components.train.config import TrainConfig
    from components.common.models import resolve

    config = TrainConfig(block_size=256, batch_size=8)
    tokenizer = AutoTokenizer.from_pretrained(resolve(config.model))
    examples = [D.encode(r, tokenizer, config.block_size) for r in rows(args)[: args.steps * config.batch_size]]
    lengths = [len(e.input_ids) for e in examples]
    print(f"{len(examples)} rows, tokens per row: min {min(lengths)}, median {statistics.median(lengths)}, max {max(lengths)}; "
          f"{torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}")

    runs = [("trainer", run_trainer), ("taletune", run_taletune)]
    if args.compile:
        runs.append(("compiled", lambda c, e: run_taletune(c, e, compile=True)))
    if args.bf16:
        runs.append(("bf16", lambda c, e: run_taletune(c, e, amp=torch.bfloat16)))
    results: dict[str, list[float]] = {name: [] for name, _ in runs}
    for _ in range(args.repeats):  # alternate, so drift on a shared machine hits both
        for name, fn in runs:
            seconds, tokens = fn(config, examples)
            results[name].append(tokens / seconds)
            print(f"  {name:9s} {tokens / seconds:7.1f} tokens/s ({seconds:.1f} s)", flush=True)

    peak = matmul_peak()
    model, _ = fresh_model(config)
    per_token = flops_per_token(model)
    base, ours = (statistics.median(results[k]) for k in ("trainer", "taletune"))
    print(f"\nbaseline transformers.Trainer (fp32, pad to longest): {base:7.1f} tokens/s  MFU {base * per_token / 1e9 / peak:5.1%}")
    print(f"taletune train_step (length-grouped, response-only head): {ours:7.1f} tokens/s  MFU {ours * per_token / 1e9 / peak:5.1%}")
    if args.compile:
        compiled = statistics.median(results["compiled"])
        print(f"taletune + torch.compile (compile time not counted):    {compiled:7.1f} tokens/s  MFU {compiled * per_token / 1e9 / peak:5.1%}")
        print(f"ratio taletune+compile / Trainer: {compiled / base:.2f}x")
    if args.bf16:
        mixed = statistics.median(results["bf16"])
        print(f"taletune + bf16 autocast:                               {mixed:7.1f} tokens/s  (native bf16: "
              f"{torch.ops.mkldnn._is_mkldnn_bf16_supported()})")
        print(f"ratio taletune+bf16 / Trainer: {mixed / base:.2f}x")
    print(f"ratio taletune / Trainer: {ours / base:.2f}x   (fp32 matmul peak measured now: {peak:.0f} GFLOP/s; "
          f"{per_token / 1e6:.0f} MFLOP per token)")


if __name__ == "__main__":
    main()
