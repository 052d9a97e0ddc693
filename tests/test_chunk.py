"""Golden values for the chunker and the templates."""

import pytest

from components.dataset.chunk import chunk_text
from components.common.prompts import prompt_prefix, render
from components.common.errors import TaletuneError

BOOK = """CHAPTER I

line a1.
line a2.

line a3.
line a4.
line a5.

line a6.

*       *       *       *       *

line b1.
line b2.
line b3.
line b4.
line b5.
line b6.
line b7.



CHAPTER II

line c1.
"""


def test_passages_pack_paragraphs_and_never_cross_a_boundary():
    passages = chunk_text(BOOK, lines_per_passage=4, min_lines=2)
    assert [p.text for p in passages] == [
        "line a1.\nline a2.",  # a3-a5 would overflow: the passage ends at the paragraph break
        "line a3.\nline a4.\nline a5.\n\nline a6.",
        "line b1.\nline b2.\nline b3.\nline b4.",  # a paragraph longer than N is split at N
        "line b5.\nline b6.\nline b7.",
    ]  # 'line c1.' is a one-line fragment under min_lines: dropped
    assert [p.section for p in passages] == [0, 0, 1, 1]
    assert [p.lines for p in passages] == [2, 4, 4, 3]


def test_headings_and_scene_breaks_are_not_text():
    text = " ".join(p.text for p in chunk_text(BOOK, 50, 1))
    assert "CHAPTER" not in text and "*" not in text
    assert "line c1." in text


def test_fifty_line_default_on_long_prose():
    paragraph = "\n".join(f"word {i} of a long paragraph." for i in range(120))
    passages = chunk_text(paragraph, lines_per_passage=50, min_lines=10)
    assert [p.lines for p in passages] == [50, 50, 20]


def test_chunk_size_must_be_positive():
    with pytest.raises(ValueError):
        chunk_text(BOOK, 0)


def test_templates_match_the_reference_formats():
    assert render("llama", "Write me a horror story", "It was night.") == (
        "### Human: Write me a horror story \n ### Assistant: It was night. \n"
    )
    assert render("falcon", "Write me a fairy tale", "Once.") == "<human> Write me a fairy tale\n<assistant> Once."
    assert prompt_prefix("llama", "P") == "### Human: P \n ### Assistant: "
    with pytest.raises(TaletuneError, match="tokenizer"):
        render("chat", "p", "r")
