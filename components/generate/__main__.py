"""Write seeded story sets, or tell one story.

    python -m components.generate --adapter runs/.../level-3 --out stories/ --set n=20
    python -m components.generate --tell --genre horror --adapter runs/.../level-3

The first form writes `stories.jsonl` (n stories per genre) and resumes where a killed
run stopped. `--tell` streams one story to the terminal, token by token.
"""

from __future__ import annotations

import argparse
import json
import sys

from components.common.cli import add_config_args, setup_logging
from components.common.config import load_config
from components.common.errors import TaletuneError, main_guard


@main_guard
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m components.generate", description=__doc__.split("\n")[0])
    parser.add_argument("--adapter", help="a level folder from the train stage (default: the untrained base model)")
    parser.add_argument("--out", help="output folder for stories.jsonl")
    parser.add_argument("--catalog", default="default", help="genre catalog YAML (default: the packaged one)")
    parser.add_argument("--tell", action="store_true", help="stream one story to the terminal instead")
    parser.add_argument("--genre", help="with --tell: the genre (default: the catalog's first)")
    parser.add_argument("--story", type=int, default=0, help="with --tell: which story of the set (its seed is seed + story)")
    add_config_args(parser)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    from components.generate.config import GenerateConfig
    from components.common.catalog import load_catalog

    catalog = load_catalog(args.catalog)
    config = load_config(GenerateConfig, args.config, args.overrides)
    if args.tell:
        return tell(catalog, config, args.adapter, args.genre, args.story)
    if not args.out:
        raise TaletuneError("give --out DIR for the story set, or --tell to read one story")
    from components.generate.stage import run_generate

    summary = run_generate(catalog, config, args.out, adapter=args.adapter)
    print(json.dumps(summary))
    print(f"stories: {args.out}/stories.jsonl")


def tell(catalog, config, adapter: str | None, genre: str | None, story: int) -> None:
    """One story, printed as it is written."""
    import torch
    from transformers import TextStreamer

    from components.generate.sampling import generate_batch
    from components.common.prompts import prompt_ids
    from components.generate.stage import eos_ids, load_generator, prompts_for, read_adapter
    from components.common.models import autocast_dtype, inference_precision

    genre = genre or sorted(catalog.genres)[0]
    prompt = prompts_for(catalog, config.model_copy(update={"genres": [genre]}))[genre]
    source = read_adapter(adapter, config)
    model, tokenizer, _ = load_generator(config, source["adapter"], source["base"])
    precision = inference_precision(config.precision)
    amp = autocast_dtype(precision)
    if precision != "fp32":
        # In bf16 a story's numbers depend on the batch it is computed in: alone, it is
        # not computed as it was in its set (README, "What is reproducible").
        print(f"note: sampling runs in {precision} (precision {config.precision}); told alone, this story may part from story {story} "
              "of the set after a few tokens. Write the set and tell the story with --set precision=fp32 to match them.",
              file=sys.stderr, flush=True)
    print(f"[{genre}, story {story}, level {source['level']}] {prompt}\n", flush=True)
    streamer = TextStreamer(tokenizer, skip_special_tokens=True)
    generate_batch(model, [prompt_ids(source["format"], prompt, tokenizer)], [config.seed + story], config.sampling.max_new_tokens,
                   config.sampling.sampling(), eos_ids(tokenizer), amp,
                   on_token=lambda row, token: streamer.put(torch.tensor([token])))
    streamer.end()


if __name__ == "__main__":
    main()
