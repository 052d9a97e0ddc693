"""Paragraph blocks and heading detection for plain-text books.

The cleaner (ingest) uses them to find where the story starts and ends; the chunker
(dataset) uses the same rules so that no passage crosses a story or chapter boundary.
Hand-written because no library models the layout of Project Gutenberg plain text:
paragraphs separated by blank lines, headings as short, mostly upper-case blocks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Words that open a numbered heading: "CHAPTER IV", "Letter 3", "BOOK II.", "STAVE ONE".
_NUMBERED = re.compile(
    r"^(chapter|book|part|letter|stave|canto|volume|vol\.|section|night|voyage|tale|story|act|scene)"
    r"\s+([0-9]+|[ivxlcdm]+|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|first|second|third|"
    r"fourth|fifth|sixth|seventh|eighth|ninth|tenth|the\s+\w+)\b",
    re.IGNORECASE,
)
_ROMAN = re.compile(r"^[IVXLCDM]+\.?$")
# "*   *   *" or "-----" lines: a scene break inside a story.
_SEPARATOR = re.compile(r"^[\s*.\-_=~#]+$")


@dataclass
class Block:
    lines: list[str]
    start: int  # index of the block's first line in the text
    blank_before: int  # blank lines before the block

    @property
    def text(self) -> str:
        return " ".join(line.strip() for line in self.lines)


def split_blocks(text: str) -> list[Block]:
    """Split text into paragraph blocks separated by blank lines."""
    blocks: list[Block] = []
    current: list[str] = []
    blanks = 0
    start = 0
    for i, line in enumerate(text.split("\n")):
        if line.strip():
            if not current:
                start = i
                before = blanks
            current.append(line.rstrip())
            blanks = 0
        else:
            if current:
                blocks.append(Block(current, start, before))
                current = []
            blanks += 1
    if current:
        blocks.append(Block(current, start, before))
    return blocks


def join_blocks(blocks: list[Block]) -> str:
    """Re-join blocks with one blank line between paragraphs."""
    return "\n\n".join("\n".join(b.lines) for b in blocks) + ("\n" if blocks else "")


def is_separator(block: Block) -> bool:
    """'*   *   *' or '-----': a scene break inside a story."""
    if len(block.lines) > 2:
        return False
    return all(_SEPARATOR.match(line) for line in block.lines) and any(c in block.text for c in "*-_=~#")


def is_heading(block: Block) -> bool:
    """A short block that titles a story or chapter: 'CHAPTER IV', 'THE RED SHOES', 'XII.'"""
    if len(block.lines) > 4 or is_separator(block):
        return False
    text = block.text.strip("_= ")
    if not text or len(text) > 110 or any(len(line.strip()) > 72 for line in block.lines):
        return False
    if _NUMBERED.match(text) or _ROMAN.match(text):
        return True
    letters = [c for c in text if c.isalpha()]
    if len(letters) < 3:
        return False
    upper = sum(c.isupper() for c in letters) / len(letters)
    if upper >= 0.85 and not text.endswith(","):
        return True
    # "The Story of the Fisherman": one title-cased line set apart by blank lines.
    return len(block.lines) == 1 and block.blank_before >= 2 and len(text) <= 60 and _title_case(text)


_SMALL_WORDS = {"a", "an", "and", "as", "at", "by", "for", "from", "in", "into", "of", "on", "or", "the", "to", "with"}


def _title_case(text: str) -> bool:
    words = re.findall(r"[A-Za-z][\w'’-]*", text)
    if not words or not words[0][0].isupper() or text.endswith((",", ";", ":", "?", "!", '"', "”")):
        return False
    big = [w for w in words if w.lower() not in _SMALL_WORDS]
    return bool(big) and all(w[0].isupper() for w in big)


def is_prose(block: Block) -> bool:
    """Running text: long enough, mostly lower case, not a list of page references."""
    text = block.text
    if len(text) < 60 or is_heading(block):
        return False
    letters = [c for c in text if c.isalpha()]
    if not letters or sum(c.islower() for c in letters) / len(letters) < 0.6:
        return False
    # Lists (contents, title pages, verse): several lines, nearly all starting with a
    # capital; wrapped prose starts most of its lines mid-sentence.
    starts = [line.strip()[:1] for line in block.lines]
    if len(starts) >= 3 and sum(c.isupper() or c.isdigit() for c in starts) >= 0.8 * len(starts):
        return False
    # Tables of contents: most lines end in a page number.
    numbered = sum(bool(re.search(r"(\s{2,}|\.{3,}\s*)\d+\s*$", line)) for line in block.lines)
    return numbered < max(1, len(block.lines) // 2)
