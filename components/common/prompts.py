"""Prompt formats: how a genre's prompt and a passage become a model's tokens.

    >>> render("llama", "Write me a horror story", "It was a dark night.")
    '### Human: Write me a horror story \\n ### Assistant: It was a dark night. \\n'
    >>> default_format("tiiuae/falcon-7b-instruct"), default_format("gemma3-270m"), default_format("smollm2-135m")
    ('falcon', 'llama', 'chat')

The format belongs to the model, not the dataset: train renders each (prompt, response)
row in the model's format and generate renders the prompt the same way, from here.
- `llama` and `falcon` are the reference study's formats, character for character;
- `chat` is the tokenizer's own chat template (instruction-tuned models such as
  SmolLM2-135M-Instruct were trained in it, so it is what they answer best in).
The dataset keeps a `text` column rendered in `llama` or `falcon` for people to read.
"""

from __future__ import annotations

from components.common.errors import TaletuneError

FORMATS = ("llama", "falcon", "chat")

# The reference study's formats, character for character.
TEMPLATES = {
    "llama": "### Human: {prompt} \n ### Assistant: {response} \n",
    "falcon": "<human> {prompt}\n<assistant> {response}",
}

# Models whose right format is known; others are guessed from the name (default_format).
KNOWN = {"smollm2-135m": "chat", "gemma3-270m": "llama"}


def default_format(model: str) -> str:
    """What suits a model: its known format, `falcon` for Falcon, `chat` for instruction-tuned
    names (instruct, chat, -it), and `llama` for a base model."""
    if model in KNOWN:
        return KNOWN[model]
    from components.common.models import hub_id

    repo = (hub_id(model) or (model,))[0]  # a pinned hub revision (org/name@v1.0) is no part of the name
    name = repo.rstrip("/").rsplit("/", 1)[-1].lower()
    if "falcon" in name:
        return "falcon"
    if any(tag in name for tag in ("instruct", "chat")) or name.endswith("-it"):
        return "chat"
    return "llama"


def check(fmt: str) -> str:
    if fmt not in FORMATS:
        raise TaletuneError(f"unknown prompt format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return fmt


def render(template: str, prompt: str, response: str) -> str:
    """A (prompt, response) pair as plain text in `llama` or `falcon` (no tokenizer needed)."""
    if template == "chat":
        raise TaletuneError(
            "format 'chat' renders with the model's own tokenizer, which the dataset stage does not load; "
            "use llama or falcon for the dataset's readable `text` (train and generate apply each model's format)"
        )
    check(template)
    return TEMPLATES[template].format(prompt=prompt, response=response)


def prompt_prefix(template: str, prompt: str) -> str:
    """The part of the rendered text before the response, for masking the prompt in training."""
    marker = "\x00RESPONSE\x00"
    return render(template, prompt, marker).split(marker)[0]


def _chat(tokenizer, messages: list[dict], **kwargs):
    if not getattr(tokenizer, "chat_template", None):
        raise TaletuneError("format 'chat' needs a model whose tokenizer has a chat template; this one has none, so use llama or falcon")
    return tokenizer.apply_chat_template(messages, **kwargs)


def prompt_ids(fmt: str, prompt: str, tokenizer) -> list[int]:
    """The token ids a story continues from, exactly as the prompt part of a training row."""
    if check(fmt) == "chat":
        return list(_chat(tokenizer, [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True, return_dict=False))
    return tokenizer(prompt_prefix(fmt, prompt), add_special_tokens=True)["input_ids"]


def encode_pair(fmt: str, prompt: str, response: str, tokenizer) -> tuple[list[int], list[int]]:
    """(prompt ids, response ids) of a training row; the response ends with EOS, so the
    model learns to stop. The prompt ids are what `prompt_ids` gives at generation."""
    head = prompt_ids(fmt, prompt, tokenizer)
    if fmt == "chat":
        user = [{"role": "user", "content": prompt}]
        before = _chat(tokenizer, user, add_generation_prompt=True, tokenize=False)
        whole = _chat(tokenizer, [*user, {"role": "assistant", "content": response}], tokenize=False)
        if not whole.startswith(before):  # a template that rewrites earlier turns cannot be masked this way
            raise TaletuneError("this tokenizer's chat template changes the prompt when a reply follows; use format llama or falcon")
        tail = whole[len(before):].rstrip()  # the reply and the template's end-of-turn token
    else:
        rendered = TEMPLATES[fmt].format(prompt=prompt, response=response)
        tail = rendered[len(prompt_prefix(fmt, prompt)):].rstrip()
    body = tokenizer(tail, add_special_tokens=False)["input_ids"]
    if not body or body[-1] != tokenizer.eos_token_id:
        body.append(tokenizer.eos_token_id)
    return head, body
