"""Write a set of seeded stories per genre for one model and training level.

    python -m components.generate --adapter runs/.../level-3 --out stories/ --set n=20

Story `i` of a genre samples from its own stream, seeded `seed + i`. Stories go in
fixed chunks (genres whose prompts have the same token length share chunks, story by
story), each written with a fixed number of stories in flight (chosen once, from
free memory or the config, and recorded), so a story's text never depends on when
the set was run. Each finished chunk is written to the storage layer at once, under a key derived
from the model, the adapter, the prompts and the settings: a retried task skips the
chunks already there, and a rerun after a kill gives exactly the stories an
uninterrupted run would have. The output is `stories.jsonl`: a header record, then one
record per story, degenerate ones included and flagged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from components.common import storage
from components.common.errors import TaletuneError
from components.common.provenance import provenance
from components.generate.config import GenerateConfig
from components.common.flags import flags
from components.generate.sampling import pack_output_layer
from components.common.catalog import Catalog

log = logging.getLogger(__name__)

FORMAT = "1"


# ------------------------------------------------------------------ setup


def prompts_for(catalog: Catalog, config: GenerateConfig) -> dict[str, str]:
    """The genres to write, in name order, and their plain prompts."""
    names = config.genres or sorted(catalog.genres)
    unknown = [g for g in names if g not in catalog.genres]
    if unknown:
        raise TaletuneError(f"genre {', '.join(unknown)} is not in the catalog; its genres are: {', '.join(sorted(catalog.genres))}")
    return {g: catalog.genres[g].prompt for g in names}


# What the report shows of a level's training, carried in the stories' header.
TRAINING_FIELDS = ("level", "fraction", "epochs", "train_loss", "val_loss", "perplexity", "steps", "samples_seen", "format")


def read_adapter(adapter: str | None, config: GenerateConfig) -> dict:
    """The adapter's record (level, model, hash, prompt format, training figures),
    checked against the base model and the prompt format in use. `base` is the model
    to load: a hub model at the commit the level was trained on (level 0 included, whose
    record names it too), not the one its revision names now."""
    from components.common.models import trained_base
    from components.common.prompts import default_format

    folder = Path(adapter) if adapter else None
    record = json.loads((folder / "training.json").read_text()) if folder and (folder / "training.json").is_file() else {}
    training = {k: record.get(k) for k in TRAINING_FIELDS} if record else None
    weights = folder / "adapter_model.safetensors" if folder else None
    if not folder or not weights.is_file():
        if folder and record.get("level") != 0:  # the untrained level's artifact has no adapter
            raise TaletuneError(f"{folder} has no adapter_model.safetensors; pass a level folder written by the train stage")
        return {"adapter": None, "level": 0, "adapter_sha256": None, "format": config.format or default_format(config.model), "training": training,
                "base": trained_base(config.model, record.get("model_identity"))}
    if record.get("model") and record["model"] != config.model:
        raise TaletuneError(
            f"the adapter in {folder} was trained on {record['model']}, not {config.model}; set model={record['model']} or pick its adapter"
        )
    trained = record.get("format")
    if config.format and trained and config.format != trained:
        raise TaletuneError(f"the adapter in {folder} was trained with prompt format {trained!r}, and this run asks for {config.format!r}; "
                            f"generate with format {trained} (or leave format unset), or train an adapter in {config.format}")
    return {"adapter": str(folder), "level": record.get("level"), "adapter_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
            "format": config.format or trained or default_format(config.model), "training": training,
            "base": trained_base(config.model, record.get("model_identity"))}


def set_key(config: GenerateConfig, prompts: dict, adapter: dict, model: str) -> tuple[str, str]:
    """(task, settings): the model's weights (`model_identity`) and the adapter; then
    everything that decides the text, the arithmetic in use and the code that writes it."""
    from components.common.models import arithmetic, inference_precision
    from components.common.provenance import code_version

    task = hashlib.sha256(json.dumps([config.model, model, adapter["adapter_sha256"]]).encode()).hexdigest()[:12]
    settings = config.model_dump(include={"format", "n", "sampling", "backend", "seed", "precision", "chunk_size"})
    # `precision: auto` is bf16 weights on one machine, fp32 on another: the key holds what it resolved to.
    settings["arithmetic"] = arithmetic(inference_precision(config.precision))
    code = code_version("components.generate", "components.common.models", "components.common.prompts")
    blob = json.dumps({"settings": settings, "prompts": prompts, "format": FORMAT, "code": code}, sort_keys=True)
    return task, hashlib.sha256(blob.encode()).hexdigest()[:12]


def plan_chunks(ids: dict[str, list[int]], n: int, chunk_size: int) -> list[list[tuple[str, int]]]:
    """The set's chunks of (genre, story number), a function of its inputs only.

    Genres whose prompts have the same length go together (no padding), interleaved
    story by story, so each chunk holds every genre.
    """
    groups: dict[int, list[str]] = {}
    for genre in ids:
        groups.setdefault(len(ids[genre]), []).append(genre)
    chunks = []
    for genres in groups.values():
        order = [(g, i) for i in range(n) for g in genres]
        chunks += [order[k : k + chunk_size] for k in range(0, len(order), chunk_size)]
    return chunks


def progress_root(config: GenerateConfig) -> str:
    return config.progress_root or storage.join(storage.cache_root(), "stories")


def auto_batch_size(model, tokens_per_row: int, limit: int) -> int:
    """Rows that fit in a quarter of free memory: KV cache, logits and the seen-token mask."""
    import torch

    cfg = model.config
    heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    item = next(model.parameters()).element_size()
    per_row = 2 * cfg.num_hidden_layers * heads * head_dim * tokens_per_row * item + cfg.vocab_size * (4 * 3 + 1)
    if torch.cuda.is_available():
        free = torch.cuda.mem_get_info()[0]
    else:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return max(1, min(limit, free // 4 // per_row))


# ------------------------------------------------------------------ main


def run_generate(catalog: Catalog, config: GenerateConfig, out_dir: str | Path, adapter: str | None = None,
                 stop_after_chunks: int | None = None) -> dict:
    """Write `stories.jsonl` into `out_dir` and return the set's summary.

    `stop_after_chunks` ends the run after that many new chunks (tests use it to
    interrupt a set the way a preempted pod would).
    """
    from components.common.models import autocast_dtype, inference_precision, model_identity, pin, resolve
    from components.common.prompts import prompt_ids

    out = Path(out_dir)
    prompts = prompts_for(catalog, config)
    source = read_adapter(adapter, config)
    config = config.model_copy(update={"format": source["format"]})  # resolved: part of the set's key
    # The adapter's commit of a hub model; with no record, what the revision names now, resolved once for the whole task.
    base = pin(source["base"], config.model_cache)
    identity_of_model = model_identity(base, config.model_cache)
    task, settings_key = set_key(config, prompts, source, identity_of_model)
    prefix = storage.join(progress_root(config), task, settings_key)
    storage.check_writable(progress_root(config))
    others = sorted({rel.split("/")[0] for rel in storage.list_prefix(storage.join(progress_root(config), task))} - {settings_key})
    if others:
        log.warning("stories for this model and adapter made with other settings are kept under %s (%s); starting a fresh set at %s",
                    storage.join(progress_root(config), task), ", ".join(others), prefix)

    from transformers import AutoConfig, AutoTokenizer

    # The tokenizer and the model's config decide the chunks; the weights are loaded only
    # when a chunk is left to write (a rerun of a finished set loads none).
    folder = resolve(base, config.model_cache)
    shape = AutoConfig.from_pretrained(folder, trust_remote_code=config.trust_remote_code)
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=config.trust_remote_code)
    ids = {g: prompt_ids(config.format, p, tokenizer) for g, p in prompts.items()}
    longest = max(len(v) for v in ids.values()) + config.sampling.max_new_tokens
    context = getattr(getattr(shape, "text_config", shape), "max_position_embeddings", None)
    if context and longest > context:
        raise TaletuneError(f"prompt plus max_new_tokens is {longest} tokens, over {config.model}'s context of {context}; lower sampling.max_new_tokens")
    chunks = plan_chunks(ids, config.n, config.chunk_size)
    manifest_uri = storage.join(prefix, "manifest.json")
    # Read once, before any model loads: a damaged manifest fails in seconds.
    manifest = read_manifest(manifest_uri) if storage.exists(manifest_uri) else None
    kept = {c for c in range(len(chunks)) if storage.exists(storage.join(prefix, f"chunk-{c:05d}.jsonl"))}
    finished = manifest is not None and len(kept) == len(chunks)
    model = None
    if not finished and config.backend == "vllm":
        from components.generate.vllm_backend import VllmEngine

        model = VllmEngine(folder, source["adapter"], config, longest)
    elif not finished:
        model, tokenizer, folder = load_generator(config, source["adapter"], base)

    if manifest is not None:
        log.info("resuming the set at %s: %d of %d chunks written, %d to write (%d stories in flight, as first chosen)",
                 prefix, len(kept), len(chunks), len(chunks) - len(kept), manifest["batch_size"])
    else:
        # A slot holds its stories one after another, so its cache spans more than one story.
        per_slot = longest + config.sampling.max_new_tokens
        batch_size = config.batch_size or (config.chunk_size if config.backend == "vllm" else auto_batch_size(model, per_slot, config.max_batch_size))
        manifest = {"batch_size": min(batch_size, config.chunk_size, config.n * len(prompts)), "settings": config.model_dump(), "prompts": prompts, "task": task, "key": settings_key}
        storage.write_text(manifest_uri, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    batch_size = manifest["batch_size"]

    identity = {"model": config.model, "model_identity": identity_of_model, "base_folder": str(folder),
                **{k: v for k, v in source.items() if k not in ("training", "base")}}
    settings = {**config.model_dump(exclude={"progress_root", "model_cache"}), "batch_size": batch_size}  # the one in use
    eos = eos_ids(tokenizer)
    amp = autocast_dtype(inference_precision(config.precision))
    written = 0
    for c, members in enumerate(chunks):
        uri = storage.join(prefix, f"chunk-{c:05d}.jsonl")
        if c in kept:
            continue
        if stop_after_chunks is not None and written >= stop_after_chunks:
            raise InterruptedError(f"stopped after {written} chunks, as asked")
        records = write_chunk(model, tokenizer, ids, prompts, members, config, batch_size, eos, amp, identity, settings)
        storage.write_text(uri, "".join(json.dumps(r) + "\n" for r in records))  # one object, all or nothing
        written += 1
        rate = sum(r["new_tokens"] for r in records) / max(1e-9, max(r["seconds"] for r in records))
        log.info("chunk %d of %d written: %d stories, %.1f new tokens/s", c + 1, len(chunks), len(records), rate)
    if not written:
        log.info("reused: all %d chunks of this set were written already (%s); no story generated", len(chunks), prefix)
    return assemble(prefix, len(chunks), config, batch_size, {**identity, "training": source["training"]}, out, reused=not written)


def read_manifest(uri: str) -> dict:
    """The set's manifest; a damaged one (written by hand, or by a tool that is not
    taletune: ours are whole or absent) is one clear error, and nothing is removed."""
    try:
        manifest = json.loads(storage.read_text(uri))
        if not isinstance(manifest["batch_size"], int) or manifest["batch_size"] < 1:
            raise ValueError("batch_size")
        return manifest
    except (ValueError, KeyError, TypeError):
        folder = uri.rsplit("/", 1)[0]
        raise TaletuneError(f"the story set's manifest {uri} is damaged (not the JSON taletune writes); delete {folder} "
                            "to write the set again (its finished chunks go with it), or restore the file") from None


def eos_ids(tokenizer) -> set[int]:
    """Tokens that end a story: the tokenizer's EOS and the usual end-of-turn tokens."""
    vocab = tokenizer.get_vocab()
    return {tokenizer.eos_token_id, *(vocab[t] for t in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>") if t in vocab)}


def load_generator(config: GenerateConfig, adapter: str | None, base: str | None = None):
    """(model, tokenizer, folder) ready to sample: the base (`base`, as `read_adapter`
    names it; None: config.model), the adapter merged in, the output layer packed on a
    CPU. bf16-mixed keeps fp32 weights (autocast does the rest); `auto` is bf16 weights
    where bf16 is native (`inference_precision`)."""
    from components.common.models import inference_precision, load_base

    precision = inference_precision(config.precision)
    # An adapter is merged into fp32 weights and the sum rounded to bf16 once: merged into
    # weights already in bf16, a LoRA change under half a bf16 step (about 0.4% of a
    # weight) would be lost, and larger ones rounded toward nothing.
    load_as = "fp32" if precision == "bf16-mixed" or (precision == "bf16" and adapter) else precision
    model, tokenizer, folder = load_base(base or config.model, config.model_cache, load_as, config.trust_remote_code)
    if adapter:
        model = attach_adapter(model, adapter, config.model)
        if precision == "bf16":
            import torch

            model = model.to(torch.bfloat16)
    return pack_output_layer(model.eval()), tokenizer, folder


def attach_adapter(model, adapter: str, model_name: str):
    from peft import PeftModel

    try:
        # Merged into the base weights: no LoRA matmuls at every step of every story.
        return PeftModel.from_pretrained(model, adapter).merge_and_unload()
    except (RuntimeError, ValueError, KeyError) as exc:
        raise TaletuneError(f"the adapter in {adapter} does not fit {model_name} ({str(exc).splitlines()[0][:200]}); "
                            "use the base model it was trained on") from None


def write_chunk(model, tokenizer, ids, prompts, members, config, batch_size, eos, amp, identity, settings) -> list[dict]:
    from components.generate.sampling import generate_batch

    seeds = [config.seed + i for _, i in members]
    if config.backend == "vllm":  # vLLM schedules its own batches
        rows = model.generate([ids[g] for g, _ in members], seeds)
    else:
        rows = generate_batch(model, [ids[g] for g, _ in members], seeds, config.sampling.max_new_tokens, config.sampling.sampling(),
                              eos, amp, slots=batch_size)
    records = []
    for (genre, i), seed, row in zip(members, seeds, rows):
        prompt = prompts[genre]
        text = tokenizer.decode(row.tokens, skip_special_tokens=True).strip()
        marks = flags(text, prompt)
        records.append({
            "type": "story", "id": f"{genre}-{i:04d}", "genre": genre, "index": i, "seed": seed, "prompt": prompt, "text": text,
            "new_tokens": len(row.tokens), "finish_reason": row.finish_reason, "seconds": round(row.seconds, 3),
            **identity, "flags": marks, "degenerate": any(marks.values()), "settings": settings,
        })
    return records


def assemble(prefix: str, n_chunks: int, config: GenerateConfig, batch_size: int, identity: dict, out: Path, reused: bool = False) -> dict:
    """Gather the chunks into `stories.jsonl` (genre, then number; written whole,
    atomically) and summarise."""
    stories, seconds = [], 0.0
    for c in range(n_chunks):
        chunk = [json.loads(line) for line in storage.read_text(storage.join(prefix, f"chunk-{c:05d}.jsonl")).splitlines()]
        seconds += max(s["seconds"] for s in chunk)  # a chunk's time is its last story's
        stories += chunk
    stories.sort(key=lambda s: (s["genre"], s["index"]))
    tokens = sum(s["new_tokens"] for s in stories)
    summary = {
        "stories": len(stories),
        "new_tokens": tokens,
        "tokens_per_second": tokens / max(1e-9, seconds),
        "empty_share": sum(s["flags"]["empty"] for s in stories) / len(stories),
        "degenerate_share": sum(s["degenerate"] for s in stories) / len(stories),
        "eos_share": sum(s["finish_reason"] == "eos" for s in stories) / len(stories),
        "batch_size": batch_size,
        "model": identity["model"],
        "format": identity["format"],
        "level": identity["level"],
        "reused": reused,
    }
    header = {"type": "header", "format": FORMAT, "progress": prefix, **identity, "summary": summary,
              **provenance(config.model_dump(), seed=config.seed)}
    out.mkdir(parents=True, exist_ok=True)
    target = out / "stories.jsonl"
    if target.exists():
        old = json.loads(target.open().readline() or "{}")
        if old.get("progress") != prefix:  # another set: keep it beside the new one
            kept = out / f"stories-{Path(str(old.get('progress', 'old'))).name}.jsonl"
            number = 1
            while kept.exists():  # never rename over a set kept earlier
                kept, number = kept.with_name(f"{kept.stem.split('~')[0]}~{number}.jsonl"), number + 1
            target.rename(kept)
            log.warning("%s held a set made with other settings; kept it as %s", target, kept.name)
    storage.write_text(str(target), "".join(json.dumps(r) + "\n" for r in [header, *stories]))
    storage.write_text(str(out / "summary.json"), json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary
