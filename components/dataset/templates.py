"""Render a (prompt, response) pair as training text, by named template.

    >>> render("llama", "Write me a horror story", "It was a dark night.")
    '### Human: Write me a horror story \\n ### Assistant: It was a dark night. \\n'
"""

from __future__ import annotations

from components.common.errors import TaletuneError

# The reference study's formats, character for character.
TEMPLATES = {
    "llama": "### Human: {prompt} \n ### Assistant: {response} \n",
    "falcon": "<human> {prompt}\n<assistant> {response}",
}


def render(template: str, prompt: str, response: str) -> str:
    if template == "chat":
        raise TaletuneError(
            "template 'chat' renders with the model's own tokenizer, which the dataset stage does not load; "
            "use template llama or falcon here (the train stage applies the chat template itself)"
        )
    if template not in TEMPLATES:
        raise TaletuneError(f"unknown template {template!r}; choose one of {', '.join([*TEMPLATES, 'chat'])}")
    return TEMPLATES[template].format(prompt=prompt, response=response)


def prompt_prefix(template: str, prompt: str) -> str:
    """The part of the rendered text before the response, for masking the prompt in training."""
    marker = "\x00RESPONSE\x00"
    return render(template, prompt, marker).split(marker)[0]
