"""Generation throughput: taletune's sampler against what a user would run instead, with
held-out perplexity beside every speed.

    TALETUNE_GUTENBERG_MIRROR=../shared/gutenberg .venv/bin/python benchmarks/generate_throughput.py --repeats 3

The task is the generate stage's: N horror stories of up to 200 new tokens from
SmolLM2-135M, sampled with the stage's defaults, on this CPU. In one run, alternating
so that drift on a shared machine hits every engine alike, it times:

- naive: one `model.generate(do_sample=True)` per story (a sample of the first
  `--naive-stories` stories: the whole set would take half an hour);
- hf-batched: one `model.generate` over the whole batch, same settings and precision;
- taletune: `components.generate`'s model and sampler, as the stage runs them;
- llama.cpp: `llama-batched-bench` on the same GGUF file (the alias's weights), N
  sequences decoding 200 tokens each from a shared prompt, when the binary is found
  (`--llama-cpp`, $LLAMA_CPP_BIN or PATH; docs/benchmarks.md shows the build). Its rate
  is decode only, without sampling, and no sequence ends early: its best case.

Each precision runs where it is native: fp32 always, bf16 weights and bf16 autocast
where the CPU has AVX512-BF16 or AMX (`--precisions` forces them; emulated bf16 is
about 400 times slower than fp32). Tokens/s are medians of the repeats; perplexity is
the precision's, scored on the demo dataset's test passages (`benchmarks/quality.py`),
and for llama.cpp by `llama-perplexity` on the same text.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def naive(model, prompt_ids, stories: int, settings, eos: set[int]) -> tuple[int, float]:
    import torch

    s = settings.sampling
    tokens, start = 0, time.perf_counter()
    for i in range(stories):
        torch.manual_seed(i)
        with torch.inference_mode():
            out = model.generate(torch.tensor([prompt_ids]), do_sample=True, max_new_tokens=s.max_new_tokens, temperature=s.temperature,
                                 top_p=s.top_p, top_k=s.top_k, repetition_penalty=s.repetition_penalty, eos_token_id=sorted(eos),
                                 pad_token_id=min(eos))
        tokens += new_tokens(out[0, len(prompt_ids):].tolist(), eos)
    return tokens, time.perf_counter() - start


def hf_batched(model, prompt_ids, stories: int, settings, eos: set[int]) -> tuple[int, float]:
    """One `generate` call over the whole batch: rows that end wait, padded, for the last."""
    import torch

    s = settings.sampling
    torch.manual_seed(0)
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(torch.tensor([prompt_ids] * stories), attention_mask=torch.ones(stories, len(prompt_ids), dtype=torch.long),
                             do_sample=True, max_new_tokens=s.max_new_tokens, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k,
                             repetition_penalty=s.repetition_penalty, eos_token_id=sorted(eos), pad_token_id=min(eos))
    seconds = time.perf_counter() - start
    return sum(new_tokens(row[len(prompt_ids):].tolist(), eos) for row in out), seconds


def new_tokens(row: list[int], eos: set[int]) -> int:
    """Tokens before the first end-of-story token: what the stage counts."""
    return next((i for i, t in enumerate(row) if t in eos), len(row))


def taletune(model, prompt_ids, stories: int, settings, eos: set[int], amp) -> tuple[int, float]:
    from components.generate.sampling import generate_batch

    start = time.perf_counter()
    rows = generate_batch(model, [prompt_ids] * stories, list(range(stories)), settings.sampling.max_new_tokens,
                          settings.sampling.sampling(), eos, amp, slots=settings.max_batch_size)
    return sum(len(r.tokens) for r in rows), time.perf_counter() - start


def llama_cpp_binary(folder: str | None, name: str) -> Path | None:
    folder = folder or os.environ.get("LLAMA_CPP_BIN")
    found = Path(folder) / name if folder else (Path(shutil.which(name)) if shutil.which(name) else None)
    return found if found and found.exists() else None


def llama_cpp_batched(binary: Path, gguf: Path, prompt_tokens: int, stories: int, new: int, threads: int) -> tuple[int, float]:
    context = stories * (prompt_tokens + new) + 256  # room for every sequence, whether or not it shares the prompt
    out = subprocess.run([str(binary), "-m", str(gguf), "-c", str(context), "-b", "2048", "-ub", "512", "-npp", str(prompt_tokens),
                          "-ntg", str(new), "-npl", str(stories), "-pps", "-t", str(threads)], capture_output=True, text=True, check=True)
    return stories * new, decode_rate(out.stdout, stories)


def decode_rate(table: str, sequences: int) -> float:
    """S_TG t/s, the decoding rate, of `llama-batched-bench`'s row for `sequences`:
    | PP | TG | B | N_KV | T_PP s | S_PP t/s | T_TG s | S_TG t/s | T s | S t/s |"""
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 8 and cells[0].isdigit() and int(cells[2]) == sequences:
            return float(cells[7])
    raise RuntimeError(f"no row for {sequences} sequences in llama-batched-bench's output: {table[-500:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stories", type=int, default=100)
    parser.add_argument("--new-tokens", type=int, default=200)
    parser.add_argument("--naive-stories", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precisions", help="comma-separated, of fp32, bf16 (weights), bf16-mixed (autocast); "
                        "default: fp32, and bf16 and bf16-mixed where the CPU has native bf16")
    parser.add_argument("--engines", default="naive,hf-batched,taletune,llama.cpp")
    parser.add_argument("--llama-cpp", help="the folder holding llama-batched-bench and llama-perplexity (default: $LLAMA_CPP_BIN, then PATH)")
    parser.add_argument("--dataset", help="a dataset stage output folder for the perplexity (default: the demo's, built from the mirror)")
    parser.add_argument("--passages", type=int, default=40)
    args = parser.parse_args()

    import torch

    from components.common.models import gguf_file, inference_precision, load_base, native_cpu_bf16
    from components.common.prompts import default_format
    from components.common.prompts import prompt_ids as render
    from components.generate.config import GenerateConfig
    from components.generate.stage import eos_ids, load_generator
    from quality import demo_dataset, heldout_text, llama_cpp_perplexity, perplexity
    from train_throughput import matmul_peak

    native = native_cpu_bf16()
    precisions = args.precisions.split(",") if args.precisions else ["fp32", *(["bf16", "bf16-mixed"] if native else [])]
    engines = args.engines.split(",")
    config = GenerateConfig(sampling={"max_new_tokens": args.new_tokens})
    threads = torch.get_num_threads()
    print(f"{threads} threads, {torch.backends.cpu.get_cpu_capability()}, native bf16: {native}; {args.stories} stories of up to "
          f"{args.new_tokens} tokens; sampling {config.sampling.model_dump()}", flush=True)
    text = heldout_text(demo_dataset(args.dataset), args.passages)

    # One model per precision, loaded once: taletune's as the stage loads it (output layer
    # packed for oneDNN in fp32), the others' plain, as a user would load it.
    models, quality = {}, {}
    for p in precisions:
        ours, tokenizer, _ = load_generator(config.model_copy(update={"precision": p}), None)
        plain = load_base(config.model, None, "fp32" if p == "bf16-mixed" else p)[0].eval()
        amp = torch.bfloat16 if p == "bf16-mixed" else None
        models[p] = (ours, plain, amp)
        quality[p] = perplexity(plain, tokenizer, text, amp=amp)  # the precision's; taletune's packed output layer is the same arithmetic
        print(f"  held-out perplexity, {p}: {quality[p]:.3f}", flush=True)
    eos = eos_ids(tokenizer)
    fmt = default_format(config.model)  # the stage's: SmolLM2's own chat format
    prompt_ids = render(fmt, "Write me a horror story", tokenizer)
    gguf = gguf_file(config.model)
    bench = llama_cpp_binary(args.llama_cpp, "llama-batched-bench") if "llama.cpp" in engines else None
    if bench and (ppl := llama_cpp_binary(args.llama_cpp, "llama-perplexity")):
        quality["llama.cpp"] = llama_cpp_perplexity(ppl, gguf, text, threads=threads)
        print(f"  held-out perplexity, llama.cpp ({gguf.name}): {quality['llama.cpp']:.3f}", flush=True)

    rates: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeats):
        for p in precisions:
            ours, plain, amp = models[p]
            runs = {"naive": lambda: naive(plain, prompt_ids, args.naive_stories, config, eos),
                    "hf-batched": lambda: hf_batched(plain, prompt_ids, args.stories, config, eos),
                    "taletune": lambda: taletune(ours, prompt_ids, args.stories, config, eos, amp)}
            for engine, run in runs.items():
                if engine not in engines:
                    continue
                # Autocast around the others; taletune's sampler takes `amp` itself, as the stage calls it.
                with torch.autocast("cpu", dtype=amp) if amp and engine != "taletune" else contextlib.nullcontext():
                    tokens, seconds = run()
                rates.setdefault((engine, p), []).append(tokens / seconds)
                print(f"  {engine:10s} {p:10s} {tokens:6d} tokens {seconds:7.1f} s {tokens / seconds:7.1f} tokens/s", flush=True)
        if bench:
            tokens, rate = llama_cpp_batched(bench, gguf, len(prompt_ids), args.stories, args.new_tokens, threads)
            rates.setdefault(("llama.cpp", gguf.stem.rsplit(".", 1)[-1]), []).append(rate)
            print(f"  llama.cpp  {gguf.stem.rsplit('.', 1)[-1]:10s} {tokens:6d} tokens {tokens / rate:7.1f} s {rate:7.1f} tokens/s", flush=True)

    peak = matmul_peak()
    params = sum(p.numel() for p in models[precisions[0]][1].parameters())
    # llama.cpp runs its own format; it is set against taletune at what `auto` picks here.
    default = inference_precision("auto")
    print(f"\n{'engine':11s} {'precision':10s} {'tokens/s':>9s}  {'runs':24s} {'perplexity':>10s}  "
          f"taletune at the same precision (llama.cpp: at {default}, what auto picks) / engine")
    for (engine, p), values in rates.items():
        median = statistics.median(values)
        same = rates.get(("taletune", p)) or rates.get(("taletune", default)) or rates.get(("taletune", precisions[0]))
        ratio = f"{statistics.median(same) / median:.2f}x" if same else "-"
        ppl = quality.get("llama.cpp" if engine == "llama.cpp" else p)
        print(f"{engine:11s} {p:10s} {median:9.1f}  {', '.join(f'{v:.1f}' for v in values):24s} "
              f"{f'{ppl:.3f}' if ppl else '-':>10s}  {ratio}")
    print(f"\narithmetic limit in fp32: {peak * 1e9 / (2 * params):.0f} tokens/s (2 x {params / 1e6:.0f}M FLOPs per token, "
          f"fp32 matmul peak measured now {peak:.0f} GFLOP/s)")
    if "llama.cpp" in engines and not bench:
        print("llama.cpp: not measured (no llama-batched-bench; build it as docs/benchmarks.md shows and pass --llama-cpp)")


if __name__ == "__main__":
    main()
