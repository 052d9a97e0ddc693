"""Merge a LoRA adapter into its base model and save a standalone safetensors model.

    python -m components.train merge --adapter runs/.../select-level-4/adapter --out merged/
"""

from __future__ import annotations

import json
from pathlib import Path

from components.common.errors import TaletuneError


def merge(adapter_dir: str | Path, out_dir: str | Path, base: str | None = None) -> Path:
    """Base model + adapter -> one model folder (weights merged, tokenizer copied)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter_dir, out = Path(adapter_dir), Path(out_dir)
    config_file = adapter_dir / "adapter_config.json"
    if not config_file.is_file():
        raise TaletuneError(f"{adapter_dir} holds no adapter (no adapter_config.json); level 0 is the base model itself")
    base = base or json.loads(config_file.read_text())["base_model_name_or_path"]
    try:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(base)
    except OSError as exc:
        raise TaletuneError(f"cannot load the base model {base}: {exc}; pass --base FOLDER") from None
    merged = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    merged.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out
