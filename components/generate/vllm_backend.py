"""The optional vLLM backend, for clusters with big GPUs and 7B models.

    pip install 'taletune[vllm]'
    python -m components.generate --adapter level-3/ --out stories/ --set backend=vllm

vLLM serves the base model with the level's LoRA adapter unmerged (`enable_lora`),
and gives each story its own seed through `SamplingParams(seed=...)`, so story `i`
is still drawn from its own stream. vLLM does not implement `no_repeat_ngram_size`;
a config that sets it is refused rather than quietly ignored. This module is not
exercised by the test suite (no CUDA there); the torch backend is the reference.
"""

from __future__ import annotations

import json
from pathlib import Path

from components.common.errors import TaletuneError, require
from components.generate.config import GenerateConfig
from components.generate.sampling import Row


class VllmEngine:
    def __init__(self, folder: str | Path, adapter: str | None, config: GenerateConfig, max_len: int):
        if config.sampling.no_repeat_ngram_size:
            raise TaletuneError("backend vllm has no no_repeat_ngram_size; set it to 0 or use backend torch")
        require("vllm", "pip install 'taletune[vllm]'")
        from vllm import LLM

        rank = json.loads((Path(adapter) / "adapter_config.json").read_text())["r"] if adapter else None
        self.llm = LLM(model=str(folder), enable_lora=bool(adapter), max_lora_rank=max(8, rank or 8), max_model_len=max_len,
                       trust_remote_code=config.trust_remote_code, seed=config.seed)
        self.adapter = adapter
        self.config = config

    def generate(self, prompts: list[list[int]], seeds: list[int]) -> list[Row]:
        import time

        from vllm import SamplingParams
        from vllm.lora.request import LoRARequest

        s = self.config.sampling
        params = [
            SamplingParams(
                max_tokens=s.max_new_tokens, temperature=0.0 if s.greedy else s.temperature, top_p=s.top_p,
                top_k=s.top_k or -1, repetition_penalty=s.repetition_penalty, seed=seed,
            )
            for seed in seeds
        ]
        lora = LoRARequest("level", 1, self.adapter) if self.adapter else None
        started = time.perf_counter()
        outputs = self.llm.generate([{"prompt_token_ids": p} for p in prompts], params, lora_request=lora, use_tqdm=False)
        seconds = time.perf_counter() - started  # vLLM does not time rows apart: each gets the whole call's time
        return [Row(tokens=list(o.outputs[0].token_ids), finish_reason="length" if o.outputs[0].finish_reason == "length" else "eos",
                    seconds=seconds) for o in outputs]
