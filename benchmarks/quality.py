"""Quality figures printed beside the speed figures: held-out perplexity, scored the way
llama.cpp's `llama-perplexity` scores it, so an engine's figure can sit beside ours.

    TALETUNE_GUTENBERG_MIRROR=../shared/gutenberg .venv/bin/python benchmarks/quality.py --precision fp32

The text is the test passages of a dataset built from the demo catalog (a seeded 10% of
each book's passages, which the benchmarks' models never trained on), joined by blank
lines and tokenized whole. It is cut into windows of `ctx` tokens, and each window's
second half is scored, each token given the window's tokens before it: every scored
token sees at least ctx/2 tokens of context. That is `llama-perplexity -c ctx`'s
method, so its figure on the same file sits beside ours; what remains apart is the
tokenizer's handling (llama.cpp puts BOS first in each window where the GGUF asks for
it) and the arithmetic, which is what the comparison is about.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def demo_dataset(folder: str | None = None) -> Path:
    """A dataset stage output: `folder` if given, else the demo catalog's books built from
    $TALETUNE_GUTENBERG_MIRROR into a temporary folder (about a minute)."""
    from components.common.catalog import load_catalog
    from components.dataset.config import DatasetConfig
    from components.dataset.stage import run_dataset
    from components.ingest.config import IngestConfig
    from components.ingest.stage import run_ingest

    if folder:
        return Path(folder)
    if not os.environ.get("TALETUNE_GUTENBERG_MIRROR"):
        sys.exit("set TALETUNE_GUTENBERG_MIRROR (e.g. ../shared/gutenberg) or pass --dataset")
    tmp = Path(tempfile.mkdtemp(prefix="taletune-bench-"))
    run_ingest(load_catalog(), IngestConfig(offline=True), tmp / "books")
    run_dataset(tmp / "books", DatasetConfig(max_rows_per_genre=400), tmp / "data")
    return tmp / "data"


def heldout_text(dataset: Path, passages: int) -> str:
    """The first `passages` test passages that have a genre, joined by blank lines."""
    from components.train.data import read_split

    rows = read_split(dataset, "test")[:passages]
    if not rows:
        sys.exit(f"{dataset} has no test passages with a genre")
    return "\n\n".join(r["response"] for r in rows)


def perplexity(model, tokenizer, text: str, ctx: int = 256, batch: int = 8, amp=None) -> float:
    """exp(mean negative log-likelihood) of each window's second half (see the module doc)."""
    import torch

    from components.common.models import autocast

    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    windows = [ids[i : i + ctx] for i in range(0, len(ids) - ctx + 1, ctx)]
    if not windows:
        raise ValueError(f"the text has {len(ids)} tokens, fewer than one window of {ctx}")
    first = ctx // 2
    device = next(model.parameters()).device
    nll, count = 0.0, 0
    with torch.inference_mode(), autocast(model, amp):
        for start in range(0, len(windows), batch):
            x = torch.tensor(windows[start : start + batch], device=device)
            logits = model(input_ids=x).logits[:, first:-1].float()
            target = x[:, first + 1 :]
            nll += torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="sum").item()
            count += target.numel()
    return math.exp(nll / count)


def llama_cpp_perplexity(binary: Path, gguf: Path, text: str, ctx: int = 256, threads: int = 2) -> float:
    """`llama-perplexity`'s final estimate on the same text and window."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
        f.write(text)
        f.flush()
        out = subprocess.run([str(binary), "-m", str(gguf), "-f", f.name, "-c", str(ctx), "-b", str(ctx), "-t", str(threads)],
                             capture_output=True, text=True, check=True)
    found = re.search(r"Final estimate: PPL = ([0-9.]+)", out.stdout + out.stderr)
    if not found:
        raise RuntimeError(f"no perplexity in llama-perplexity's output: {(out.stdout + out.stderr)[-500:]}")
    return float(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "bf16-mixed"])
    parser.add_argument("--dataset", help="a dataset stage output folder (default: build the demo dataset from the mirror)")
    parser.add_argument("--passages", type=int, default=40)
    parser.add_argument("--ctx", type=int, default=256)
    args = parser.parse_args()

    from components.common.models import load_base

    text = heldout_text(demo_dataset(args.dataset), args.passages)
    model, tokenizer, _ = load_base(args.model, None, "fp32" if args.precision == "bf16-mixed" else args.precision)
    import torch

    amp = torch.bfloat16 if args.precision == "bf16-mixed" else None
    print(f"{args.model} {args.precision}: held-out perplexity {perplexity(model.eval(), tokenizer, text, args.ctx, amp=amp):.3f}")


if __name__ == "__main__":
    main()
