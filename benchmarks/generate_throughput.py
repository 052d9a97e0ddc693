"""Generation throughput: taletune's batched sampler against one `model.generate` per story.

    .venv/bin/python benchmarks/generate_throughput.py --stories 100 --new-tokens 200 --naive-stories 4

The task is the generate stage's: N horror stories of up to 200 new tokens from
SmolLM2-135M (fp32, sampling at the stage's defaults) on this CPU. The baseline is the
naive loop, one `model.generate(do_sample=True)` call per story with the same settings;
it runs on the first `--naive-stories` stories only (at about 10 tokens/s the whole set
would take half an hour), and its rate is tokens per second of that sample. The
script prints both rates, their ratio, the fraction of the arithmetic limit reached
(2 x parameters FLOPs per token against a matmul peak measured in the same run),
and, if `llama-cpp-python` is installed, llama.cpp's single-stream rate on the same
GGUF file.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def naive(model, tokenizer, prompt_ids, stories: int, settings) -> tuple[int, float]:
    import torch

    s = settings.sampling
    tokens, start = 0, time.perf_counter()
    for i in range(stories):
        torch.manual_seed(i)
        with torch.inference_mode():
            out = model.generate(
                torch.tensor([prompt_ids]), do_sample=True, max_new_tokens=s.max_new_tokens, temperature=s.temperature,
                top_p=s.top_p, top_k=s.top_k, repetition_penalty=s.repetition_penalty, pad_token_id=tokenizer.eos_token_id,
            )
        tokens += out.shape[1] - len(prompt_ids)
    return tokens, time.perf_counter() - start


def batched(model, tokenizer, prompt_ids, stories: int, batch_size: int, settings) -> tuple[int, float, float]:
    from components.generate.sampling import generate_batch

    start = time.perf_counter()
    rows = generate_batch(model, [prompt_ids] * stories, list(range(stories)), settings.sampling.max_new_tokens,
                          settings.sampling.sampling(), {tokenizer.eos_token_id}, slots=batch_size)
    seconds = time.perf_counter() - start
    return sum(len(r.tokens) for r in rows), seconds, sum(r.finish_reason == "eos" for r in rows) / stories


def llama_cpp(gguf: Path, prompt: str, stories: int, settings) -> tuple[int, float] | None:
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    s = settings.sampling
    llm = Llama(model_path=str(gguf), n_ctx=512, n_threads=2, verbose=False, seed=0)
    tokens, start = 0, time.perf_counter()
    for i in range(stories):
        out = llm(prompt, max_tokens=s.max_new_tokens, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k,
                  repeat_penalty=s.repetition_penalty, seed=i)
        tokens += out["usage"]["completion_tokens"]
    return tokens, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stories", type=int, default=100)
    parser.add_argument("--new-tokens", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=128, help="taletune's stories in flight (the stage's default cap)")
    parser.add_argument("--naive-stories", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    import torch

    from components.common.prompts import prompt_prefix
    from components.generate.config import GenerateConfig
    from components.common.prompts import prompt_ids as render
    from components.common.models import gguf_file, load_base
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train_throughput import matmul_peak

    settings = GenerateConfig(sampling={"max_new_tokens": args.new_tokens})
    model, tokenizer, _ = load_base(settings.model, None, "fp32")
    model.eval()
    prompt = "Write me a horror story"
    prompt_ids = render("llama", prompt, tokenizer)
    print(f"{torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}; sampling {settings.sampling.model_dump()}")

    from components.generate.sampling import pack_output_layer

    plain = model.get_output_embeddings()
    packed = pack_output_layer(model).get_output_embeddings()  # what the generate stage does on a CPU
    rates: dict[str, list[float]] = {"naive": [], "taletune": []}
    for _ in range(args.repeats):  # alternate, so drift on a shared machine hits both
        model.set_output_embeddings(plain)
        tokens, seconds = naive(model, tokenizer, prompt_ids, args.naive_stories, settings)
        rates["naive"].append(tokens / seconds)
        print(f"  naive     {args.naive_stories:4d} stories {tokens:6d} tokens {seconds:7.1f} s  {tokens / seconds:7.1f} tokens/s", flush=True)
        model.set_output_embeddings(packed)
        tokens, seconds, eos = batched(model, tokenizer, prompt_ids, args.stories, args.batch_size, settings)
        rates["taletune"].append(tokens / seconds)
        print(f"  taletune  {args.stories:4d} stories {tokens:6d} tokens {seconds:7.1f} s  {tokens / seconds:7.1f} tokens/s "
              f"({eos:.0%} ended by EOS)", flush=True)

    peak = matmul_peak()
    model.set_output_embeddings(plain)
    params = sum(p.numel() for p in model.parameters())  # tied embeddings count once: the output layer's matmul
    limit = peak * 1e9 / (2 * params)
    base, ours = statistics.median(rates["naive"]), statistics.median(rates["taletune"])
    print(f"\nnaive (one model.generate per story): {base:7.1f} tokens/s")
    print(f"taletune (batch {args.batch_size}):              {ours:7.1f} tokens/s")
    print(f"ratio taletune / naive: {ours / base:.1f}x")
    print(f"arithmetic limit: {limit:.0f} tokens/s (2 x {params / 1e6:.0f}M FLOPs per token, fp32 matmul peak measured now "
          f"{peak:.0f} GFLOP/s); taletune reaches {ours / limit:.0%}")
    cpp = llama_cpp(gguf_file(settings.model), prompt_prefix("llama", prompt), args.naive_stories, settings)
    if cpp:
        print(f"llama.cpp single-stream ({gguf_file(settings.model).name}): {cpp[0] / cpp[1]:7.1f} tokens/s; "
              f"ratio taletune / llama.cpp: {ours / (cpp[0] / cpp[1]):.1f}x")
    else:
        print("llama.cpp: not measured (pip install llama-cpp-python, about 10 minutes to compile here)")


if __name__ == "__main__":
    main()
