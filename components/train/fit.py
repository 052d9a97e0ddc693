"""LoRA fine-tuning at several training levels, resumable from any point.

    python -m components.train --dataset runs/.../make-dataset/dataset --out adapters/

setup -> main -> fit, as in litgpt: `run_train` loads the model and data and evaluates
the untrained level; `fit` is a plain PyTorch loop. In `nested` mode one run snapshots
the adapter as it passes each level (30% of an epoch, 1 epoch, 3 epochs); in
`independent` mode each level is its own run with its own schedule.

Every `checkpoint_every` steps the LoRA weights, optimizer, RNG and step go to the
storage layer under a key derived from the data and the config. A rerun with the same
inputs resumes there, and a finished level is never trained again. The data order is a
function of the seed and the epoch only, so a resumed run sees exactly the batches an
uninterrupted one would have.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import random
import tempfile
import time
from pathlib import Path

from components.common import storage
from components.common.errors import TaletuneError
from components.common.provenance import code_version, provenance, write_run_record
from components.train import data as D
from components.train import distributed as dist
from components.train.config import Level, TrainConfig
from components.common.models import arithmetic, autocast, autocast_dtype, default_targets, load_base, model_identity, pin, pinned_base

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "1"


# ------------------------------------------------------------------ setup


def task_key(dataset_dir: Path, config: TrainConfig, levels: list[Level], model: str) -> str:
    """Short hash of what determines the weights: the data, the settings, the base
    model's weights (`model_identity`), the arithmetic in use and the training code."""
    h = hashlib.sha256()
    for split in ("train", "validation"):
        path = dataset_dir / "data" / f"{split}.parquet"  # absent: a split the dataset stage left empty
        h.update(hashlib.sha256(path.read_bytes() if path.is_file() else b"").digest())
    settings = config.model_dump(exclude={"checkpoint_root", "checkpoint_every", "model_cache", "levels", "only_level", "compile"})
    # `precision: auto` is bf16 autocast on one CPU, fp32 on another, bf16 weights on a GPU: the key holds what it resolved to.
    resolved = arithmetic(config.precision)
    code = code_version("components.train", "components.common.models", "components.common.prompts")
    h.update(json.dumps({"settings": settings, "levels": [lv.model_dump() for lv in levels], "format": CHECKPOINT_FORMAT,
                         "model": model, "arithmetic": resolved, "code": code}, sort_keys=True).encode())
    return h.hexdigest()[:16]


def checkpoint_root(config: TrainConfig) -> str:
    return config.checkpoint_root or storage.join(storage.cache_root(), "checkpoints")


def run_train(dataset_dir: str | Path, config: TrainConfig, out_dir: str | Path, stop_after_steps: int | None = None,
              base: str | None = None) -> dict:
    """Evaluate the base model (level 0) and train every level; returns a summary per level.

    `base` is config.model as another task pinned it (`models.prepare_base`: the
    pipeline's model task), loaded and keyed in its place; None: pinned here.
    `stop_after_steps` ends the run early after that many optimizer steps (tests use it
    to interrupt a run the way a preempted pod would).
    """
    import torch

    dataset_dir, out = Path(dataset_dir), Path(out_dir)
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    train_rows = D.cap_per_genre(D.read_split(dataset_dir, "train"), config.max_train_rows_per_genre, config.seed)
    val_rows = D.read_split(dataset_dir, "validation")[: config.max_eval_rows]
    if not train_rows:
        raise TaletuneError(f"{dataset_dir} has no training rows with a prompt")
    if dist.world() > 1:
        log.info("data parallel over %d processes (this is rank %d)", dist.world(), dist.rank())
    if dist.is_main():
        storage.check_writable(checkpoint_root(config))
    else:  # under `accelerate launch`, only the main process writes the outputs
        out = Path(tempfile.mkdtemp(prefix=f"taletune-rank{dist.rank()}-"))
    if config.mode == "nested":
        runs = [(config.levels, list(range(1, len(config.levels) + 1)))]
    else:
        runs = [([lv], [k]) for k, lv in enumerate(config.levels, start=1) if config.only_level in (None, k)]
    # A hub revision resolved to its commit once: the keys, the levels' records (their
    # model_identity, which the generate stage loads the base at) and the weights are of one
    # commit. In the pipeline the model task pinned it, once for every level's task.
    base = pinned_base(config.model, base) if base else pin(config.model, config.model_cache)
    identity = model_identity(base, config.model_cache)
    keys = [task_key(dataset_dir, config, levels, identity) for levels, _ in runs]
    prefixes = [storage.join(checkpoint_root(config), key) for key in keys]
    # Level 0 (the untrained model's validation loss) is kept beside the first run's levels.
    stored = [(prefixes[0], 0)] + [(prefix, k) for prefix, (_, numbers) in zip(prefixes, runs) for k in numbers]
    if all(storage.exists(storage.join(prefix, f"level-{k}", "training.json")) for prefix, k in stored):
        log.info("reused: every level of %s is trained and measured already (%s); nothing trained, no model loaded", config.model, ", ".join(keys))
        summary = {k: {**_export(prefix, k, out), "reused": True} for prefix, k in stored}
        write_run_record(out, reused=True, model=config.model)
        return summary

    level0_uri = storage.join(prefixes[0], "level-0")
    level0_done = storage.exists(storage.join(level0_uri, "training.json"))
    dist.barrier()  # every process has looked before any writes, so all take the same branches below
    model, tokenizer, folder = load_base(base, config.model_cache, config.precision, config.trust_remote_code)
    context = getattr(model.config, "max_position_embeddings", None)
    if context and config.block_size > context:
        raise TaletuneError(f"block_size {config.block_size} is over {config.model}'s context of {context} tokens")
    train = [D.encode(r, tokenizer, config.block_size, config.format) for r in train_rows]
    if config.packing:
        train = D.pack(train, config.block_size)
    val = [D.encode(r, tokenizer, config.block_size, config.format) for r in val_rows]

    model = attach_lora(model, config)
    amp = autocast_dtype(config.precision)
    base_info = {"model": config.model, "model_identity": identity, "format": config.format, "base_folder": str(folder), "train_rows": len(train_rows), "val_rows": len(val_rows),
                 "autocast": str(amp).removeprefix("torch.") if amp else None}
    if level0_done:
        summary = {0: _export(prefixes[0], 0, out)}
    else:
        level0 = evaluate(model, val, tokenizer, base=True, amp=amp)
        with tempfile.TemporaryDirectory() as stage:
            record = write_level(Path(stage), model, config, Level(fraction=1, epochs=1), 0, level0, base_info)
            if dist.is_main():
                storage.copy_prefix(stage, level0_uri)
        dist.barrier()
        summary = {0: _export(prefixes[0], 0, out) if dist.is_main() else record}
    if compiles(config, model, train, [levels for levels, _ in runs]):  # after level 0: its evaluation would compile a graph of its own
        compile_decoder(model)
    for (levels, numbers), key in zip(runs, keys):
        if config.mode == "independent":
            reset_lora(model, config.seed)
        summary.update(fit(model, tokenizer, train, val, config, levels, numbers, key, out, base_info, stop_after_steps, amp))
    if dist.is_main():
        write_run_record(out, reused=all(r.get("reused") for r in summary.values()), model=config.model)
    return summary


def attach_lora(model, config: TrainConfig):
    from peft import LoraConfig, get_peft_model

    targets = config.lora.target_modules or default_targets(model)
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in targets if t not in names]
    if missing:
        raise TaletuneError(f"LoRA target {', '.join(missing)} matches no module of {config.model}; some modules: {sorted(names)[:15]}")
    lora = LoraConfig(
        r=config.lora.r, lora_alpha=config.lora.alpha, lora_dropout=config.lora.dropout, target_modules=targets, task_type="CAUSAL_LM"
    )
    return get_peft_model(model, lora)


def reset_lora(model, seed: int) -> None:
    import torch

    torch.manual_seed(seed)
    for module in model.modules():
        if hasattr(module, "reset_lora_parameters"):
            module.reset_lora_parameters("default", True)


# ------------------------------------------------------------------ fit


def lr_at(step: int, total: int, config: TrainConfig, decay: bool) -> float:
    warmup = max(1, round(total * config.warmup_ratio)) if config.warmup_ratio else 0
    if step < warmup:
        return config.learning_rate * (step + 1) / warmup
    if not decay:
        return config.learning_rate  # nested: constant, so every snapshot is a fair stopping point
    return config.learning_rate * max(0.0, (total - step) / max(1, total - warmup))


def schedule(examples: list, config: TrainConfig, levels: list[Level]) -> tuple[list[list[int]], list[int]]:
    """Micro-batches of example indices for the whole run, and the step where each level ends.

    Each epoch is a seeded shuffle, cut into length-grouped batches. Nested levels are
    prefixes of one run: (f, 1) ends part-way through the first epoch, (1, e) after e
    epochs. An independent level trains on a fixed seeded subset for its epochs.
    """
    n, bs = len(examples), config.batch_size

    def shuffled(items: list[int], tag: str) -> list[int]:
        items = items[:]
        random.Random(f"{config.seed}-{tag}").shuffle(items)
        return items

    micro: list[list[int]] = []
    if config.mode == "nested":
        for epoch in range(max(lv.epochs for lv in levels)):
            micro += D.batches(shuffled(list(range(n)), f"epoch-{epoch}"), examples, bs)
        per_epoch = math.ceil(n / bs)
        ends_micro = [math.ceil(lv.fraction * n / bs) if lv.fraction < 1 else lv.epochs * per_epoch for lv in levels]
    else:
        (level,) = levels
        subset = shuffled(list(range(n)), "subset")[: math.ceil(level.fraction * n)]
        for epoch in range(level.epochs):
            micro += D.batches(shuffled(subset, f"epoch-{epoch}"), examples, bs)
        ends_micro = [len(micro)]
    ends = [math.ceil(e / config.gradient_accumulation) for e in ends_micro]
    return micro[: ends_micro[-1]], ends


def fit(model, tokenizer, train, val, config: TrainConfig, levels, numbers, key, out: Path, base_info, stop_after_steps, amp=None):
    import torch
    from tqdm.auto import tqdm

    prefix = storage.join(checkpoint_root(config), key)
    done = {k: json.loads(storage.read_text(storage.join(prefix, f"level-{k}", "training.json")))
            for k in numbers if storage.exists(storage.join(prefix, f"level-{k}", "training.json"))}
    if len(done) == len(numbers):
        log.info("reused: all levels of %s are trained already; copying them from %s, nothing trained", key, prefix)
        return {k: {**_export(prefix, k, out), "reused": True} for k in numbers}

    micro, ends = schedule(train, config, levels)
    total = ends[-1]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    step, history = 0, []
    state_uri = storage.join(prefix, "state.pt")
    if storage.exists(state_uri):
        state = _load_state(state_uri)
        _load_trainable(model, state["lora"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        if state.get("cuda_rng") and torch.cuda.is_available():  # LoRA dropout draws from it on a GPU
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        step, history = state["step"], state["history"]
        log.info("resuming %s at step %d of %d from %s", key, step, total, state_uri)

    out.mkdir(parents=True, exist_ok=True)
    with open(out / "metrics.jsonl", "w") as fh:  # the full history, then appended live
        for row in history:
            fh.write(json.dumps(row) + "\n")
    model.train()
    tokens, started = 0, time.perf_counter()
    metrics_file = open(out / "metrics.jsonl", "a")
    progress = tqdm(total=total, initial=step, desc=f"train {key}", unit="step", disable=not dist.is_main(), mininterval=5)
    try:
        while step < total:
            lr = lr_at(step, total, config, decay=config.mode == "independent")
            for g in optimizer.param_groups:
                g["lr"] = lr
            first = step * config.gradient_accumulation
            loss, n_tokens = train_step(model, optimizer, micro[first : first + config.gradient_accumulation], train, tokenizer.pad_token_id, amp)
            tokens += n_tokens
            step += 1
            row = {"step": step, "loss": loss, "lr": lr}
            history.append(row)
            metrics_file.write(json.dumps(row) + "\n")
            metrics_file.flush()
            progress.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", refresh=False)
            progress.update()
            for k, lv, end in zip(numbers, levels, ends):
                if step == end and k not in done:
                    info = {
                        **base_info,
                        "steps": step,
                        "samples_seen": min(step * config.batch_size * config.gradient_accumulation, math.ceil(lv.samples_factor * len(train))),
                        "train_loss": row["loss"],
                        # Of this process's training time (a resumed run counts from the resume).
                        "tokens_per_second": tokens / (time.perf_counter() - started),
                    }
                    paused = time.perf_counter()
                    result = evaluate(model, val, tokenizer, amp=amp)
                    log.info("level %d at step %d: train loss %.4f, validation loss %s", k, step, row["loss"], result["val_loss"])
                    with tempfile.TemporaryDirectory() as stage:
                        done[k] = write_level(Path(stage), model, config, lv, k, result, info)
                        # training.json sorts last, so a level counts as done only once whole.
                        if dist.is_main():
                            storage.copy_prefix(stage, storage.join(prefix, f"level-{k}"))
                    dist.barrier()
                    started += time.perf_counter() - paused  # tokens/s counts training time only
                    model.train()
            stopping = stop_after_steps is not None and step >= stop_after_steps and step < total
            if (step % config.checkpoint_every == 0 and step < total) or stopping:
                if dist.is_main():
                    _save_state(state_uri, model, optimizer, step, history)
                dist.barrier()
            if stopping:
                raise InterruptedError(f"stopped after {step} steps, as asked")
    finally:
        progress.close()
        metrics_file.close()
    return {k: _export(prefix, k, out) for k in numbers}


COMPILE_MIN_TOKENS = 200_000  # the break-even measured on this project's CPU: 30,000-200,000 tokens


def compiles(config: TrainConfig, model, train: list, runs: list[list[Level]]) -> bool:
    """Whether to put the decoder layers under torch.compile. `compile: auto` does on a
    CPU when this process's steps hold at least COMPILE_MIN_TOKENS tokens (the rows'
    tokens times each run's epochs, a share of the rows under data parallelism), the
    model's layers are found, and a C++ compiler is there for inductor to use."""
    import shutil

    import torch

    compiler = torch.cuda.is_available() or any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "g++", "c++", "clang++"))
    if config.compile is True:
        if decoder_layers(model) is None:
            raise TaletuneError(f"train.compile: true compiles the decoder layers, and {config.model} has none where taletune looks "
                                "(model.layers, transformer.h, gpt_neox.layers); set train.compile: false")
        if not compiler:
            raise TaletuneError("train.compile: true needs a C++ compiler for torch.compile on a CPU, and none is on PATH; "
                                "install one (apt-get install g++) or set train.compile: false")
    if config.compile != "auto":
        return config.compile
    if torch.cuda.is_available() or decoder_layers(model) is None:
        return False
    per_epoch = sum(len(e.input_ids) for e in train) / dist.world()
    if per_epoch * sum(max(lv.samples_factor for lv in levels) for levels in runs) < COMPILE_MIN_TOKENS:
        return False
    if not compiler:
        log.info("train.compile auto: no C++ compiler for torch.compile on this machine, so the layers run eagerly")
        return False
    return True


def decoder_layers(model):
    """The decoder's list of layers, or None where it is not in a known place."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    for path in ("model.layers", "transformer.h", "gpt_neox.layers"):
        node = base
        for name in path.split("."):
            node = getattr(node, name, None)
        if node is not None:
            return node
    return None


def compile_decoder(model) -> None:
    """Put each decoder layer under torch.compile, in place, so parameter names
    (checkpoints, adapters) stay those of the model.

    Layer by layer ("regional compilation"): the layers share one compiled graph, so
    the first step took 34-52 s here against 153 s for the whole decoder compiled as
    one, which ran 4-9% faster afterwards (200 against 184-192 tokens/s; docs/benchmarks.md).
    """
    for layer in decoder_layers(model):
        layer.compile()


def train_step(model, optimizer, micro: list[list[int]], examples: list, pad_id: int, amp=None) -> tuple[float, int]:
    """One optimizer step over some micro-batches; returns (mean response loss, tokens).

    Each micro-batch's loss is the mean over its response tokens. Under `accelerate
    launch` every process takes a share of each micro-batch and the loss is scaled by
    the global token count, so the summed gradients equal a single process's.
    """
    device = next(model.parameters()).device
    loss_sum, count, tokens = 0.0, 0, 0
    for idx in micro:
        mine = dist.shard(idx)
        labels_here = sum(sum(label != D.IGNORE for label in examples[i].labels[1:]) for i in mine)
        n_global = dist.sum_(labels_here)
        if mine:
            batch = {k: v.to(device) for k, v in D.collate([examples[i] for i in mine], pad_id).items()}
            with autocast(model, amp):
                loss, n_labels = response_loss(model, batch)
            (loss * n_labels / max(1.0, n_global) / len(micro)).backward()
            loss_sum += loss.item() * n_labels
            tokens += int(batch["attention_mask"].sum())
        count += n_global
    dist.sum_gradients(p for p in model.parameters() if p.requires_grad)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return dist.sum_(loss_sum) / max(1, count), int(dist.sum_(tokens))


def response_loss(model, batch: dict):
    """Next-token cross-entropy on the response tokens, and how many there are.

    The output layer (576 x 49,152 for SmolLM2, a fifth of its compute) runs only on
    the positions that have a label: not on the prompt, the padding or the last token.
    Models that post-process logits (soft-capping, scaling) take the plain path.
    """
    import torch.nn.functional as F

    targets = batch["labels"][:, 1:]
    keep = targets != D.IGNORE
    n_labels = int(keep.sum())
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder, head = getattr(base, "model", None), base.get_output_embeddings()
    plain = decoder is None or head is None or getattr(base.config, "final_logit_softcapping", None) or hasattr(base, "logit_scale")
    # use_cache=False: a training forward has no next step to feed; left on, the model
    # fills a key/value cache that nothing reads (and under torch.compile, each layer's
    # cache state is one more guard to recompile on).
    if plain:
        return model(**batch, use_cache=False).loss, n_labels
    hidden = decoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).last_hidden_state
    logits = head(hidden[:, :-1][keep])
    return F.cross_entropy(logits.float(), targets[keep]), n_labels


def _trainable_state(model) -> dict:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def _load_trainable(model, state: dict) -> None:
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in state:
                param.copy_(state[name])


def _save_state(uri: str, model, optimizer, step: int, history: list) -> None:
    import torch

    buf = io.BytesIO()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    torch.save({"lora": _trainable_state(model), "optimizer": optimizer.state_dict(), "rng": torch.get_rng_state(), "cuda_rng": cuda_rng,
                "step": step, "history": history}, buf)
    storage.write_bytes(uri, buf.getvalue())  # one atomic write: a kill leaves the previous state


def _load_state(uri: str) -> dict:
    """A checkpoint of tensors, numbers and lists only: the bytes come from shared storage,
    so nothing in them may run code (weights_only=True refuses pickled objects)."""
    import pickle

    import torch

    try:
        return torch.load(io.BytesIO(storage.read_bytes(uri)), weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise TaletuneError(f"the checkpoint {uri} is not a taletune checkpoint of plain tensors ({str(exc).splitlines()[0][:160]}); "
                            "delete it to train that run from its start") from None


def _export(prefix: str, k: int, out: Path) -> dict:
    target = out / f"level-{k}"
    storage.copy_prefix(storage.join(prefix, f"level-{k}"), str(target))
    return json.loads((target / "training.json").read_text())


# ------------------------------------------------------------------ evaluate and save


def evaluate(model, val: list, tokenizer, base: bool = False, batch_size: int = 8, amp=None) -> dict:
    """Mean loss over response tokens of the validation rows, and perplexity."""
    import contextlib

    import torch

    if not val:
        return {"val_loss": None, "perplexity": None}
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    adapter_off = model.disable_adapter() if base and hasattr(model, "disable_adapter") else contextlib.nullcontext()
    with torch.no_grad(), adapter_off, autocast(model, amp):
        for i in range(0, len(val), batch_size):
            batch = {k: v.to(device) for k, v in D.collate(val[i : i + batch_size], tokenizer.pad_token_id).items()}
            n = int((batch["labels"][:, 1:] != D.IGNORE).sum())
            total += float(response_loss(model, batch)[0]) * n
            count += n
    loss = total / max(1, count)
    return {"val_loss": loss, "perplexity": math.exp(loss)}


def write_level(folder: Path, model, config: TrainConfig, level: Level, k: int, result: dict, info: dict) -> dict:
    """A level's artifact: the PEFT adapter (none for level 0, the untrained base) and training.json."""
    folder.mkdir(parents=True, exist_ok=True)
    if k:
        model.save_pretrained(folder, safe_serialization=True)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad) if k else 0
    record = {
        "level": k,
        "fraction": level.fraction if k else 0.0,
        "epochs": level.epochs if k else 0,
        **result,
        **info,
        "trainable_parameters": trainable,
        "provenance": provenance(config.model_dump(), seed=config.seed),
    }
    storage.write_text(str(folder / "training.json"), json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record
