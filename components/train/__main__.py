"""Fine-tune a model with LoRA at the configured training levels.

    python -m components.train --dataset runs/.../make-dataset/dataset --out adapters/ --set max_train_rows_per_genre=40
    python -m components.train model smollm2-135m      # convert the alias into the model cache, once
    python -m components.train merge --adapter adapters/level-3 --out merged/
"""

from __future__ import annotations

import argparse
import json
import sys

from components.common.cli import add_config_args, setup_logging
from components.common.config import load_config
from components.common.errors import main_guard


@main_guard
def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["model"]:
        return prepare_model(argv[1:])
    if argv[:1] == ["merge"]:
        return merge_adapter(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m components.train", description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True, help="folder written by the dataset stage")
    parser.add_argument("--out", required=True, help="output folder: level-0/ ... level-N/ and metrics.jsonl")
    add_config_args(parser)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    from components.train.config import TrainConfig
    from components.train.fit import run_train

    summary = run_train(args.dataset, load_config(TrainConfig, args.config, args.overrides), args.out)
    for k, record in sorted(summary.items()):
        # No validation rows (an empty validation split): the levels are trained all the same.
        loss = f"val_loss {record['val_loss']:.4f}  perplexity {record['perplexity']:.2f}" if record["val_loss"] is not None else "no validation rows"
        print(f"level {k}: {loss}  -> {args.out}/level-{k}")


def prepare_model(argv: list[str]) -> None:
    """Resolve a model (alias, hub id, folder) into the model cache and print its folder
    and its pinned name (a hub id at the commit its revision names now)."""
    parser = argparse.ArgumentParser(prog="python -m components.train model", description=prepare_model.__doc__)
    parser.add_argument("name", help="alias (smollm2-135m), hub id or folder")
    parser.add_argument("--cache", help="model cache folder or s3:// prefix")
    args = parser.parse_args(argv)
    setup_logging()
    from components.common.models import pin, resolve

    # Pinned first, as the pipeline's model task does: the revision's record is written
    # to the cache, for tasks that cannot reach the hub.
    pinned = pin(args.name, args.cache)
    folder = resolve(pinned, args.cache)
    print(json.dumps({"model": args.name, "pinned": pinned, "folder": str(folder)}))


def merge_adapter(argv: list[str]) -> None:
    """Merge a level's adapter into its base model: a standalone safetensors model folder."""
    parser = argparse.ArgumentParser(prog="python -m components.train merge", description=merge_adapter.__doc__)
    parser.add_argument("--adapter", required=True, help="a level folder (adapter_config.json, adapter_model.safetensors)")
    parser.add_argument("--out", required=True, help="output model folder")
    parser.add_argument("--base", help="base model folder (default: the adapter's base_model_name_or_path)")
    args = parser.parse_args(argv)
    setup_logging()
    from components.train.merge import merge

    print(f"merged model in {merge(args.adapter, args.out, args.base)}")


if __name__ == "__main__":
    main()
