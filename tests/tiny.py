"""A tiny random Llama-style model, a tiny sentiment classifier and a tiny dataset, for fast tests."""

from __future__ import annotations

from pathlib import Path

WORDS = (
    "the night was dark and the wind howled at the old house where a ghost walked the halls "
    "once upon a time a princess lived in a castle by the sea and a frog sang to her every morning"
).split()


def make_tokenizer(folder: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([" ".join(WORDS)] * 50 + ["### Human: Write me a story \n ### Assistant: "] * 20, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="</s>")
    fast.save_pretrained(folder)
    return fast


def make_model(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    tok = make_tokenizer(folder)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    return folder


def make_dataset(folder: Path, rows_per_genre: int = 24, seed: int = 0) -> Path:
    import random

    from components.common.parquet import write_parquet
    from components.common.prompts import render

    rng = random.Random(seed)
    prompts = {"horror": "Write me a horror story", "fairy_tale": "Write me a fairy tale"}
    splits = {"train": [], "validation": []}
    for label, prompt in prompts.items():
        for i in range(rows_per_genre + 6):
            words = WORDS[:20] if label == "horror" else WORDS[20:]
            response = " ".join(rng.choice(words) for _ in range(rng.randint(8, 40)))
            row = {
                "prompt": prompt, "response": response, "label": label, "text": render("llama", prompt, response),
                "book_id": label, "book_title": label, "position": i, "section": 0, "lines": 3,
            }
            splits["train" if i < rows_per_genre else "validation"].append(row)
    splits["train"].append({**splits["train"][0], "label": "other", "prompt": None, "text": None})
    for name, rows in splits.items():
        write_parquet(rows, folder / "data" / f"{name}.parquet")
    return folder


def make_sentiment_model(folder: Path) -> Path:
    """A random one-layer BERT classifier with MiniLM's tokenizer: the plumbing, fast."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from components.evaluate.embed import minilm_folder

    tok = AutoTokenizer.from_pretrained(minilm_folder())
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                        id2label={0: "NEGATIVE", 1: "POSITIVE"}, label2id={"NEGATIVE": 0, "POSITIVE": 1})
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder
