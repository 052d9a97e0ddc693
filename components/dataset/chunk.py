"""Cut a cleaned book into passages of about N lines that never cross a boundary.

A boundary is a heading (a story title, 'CHAPTER IV') or a scene break ('*  *  *').
Within a section, whole paragraphs are packed into a passage while it stays within N
lines; a paragraph longer than N lines is split at N. Passages under `min_lines` are
fragments (a chapter's last lines) and are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.common.textblocks import Block, is_heading, is_separator, split_blocks


@dataclass(frozen=True)
class Passage:
    text: str
    section: int  # index of the section (story or chapter) in the book
    lines: int


def sections(text: str) -> list[list[Block]]:
    """Paragraph blocks grouped by section; headings and scene breaks are left out."""
    out: list[list[Block]] = [[]]
    for block in split_blocks(text):
        if is_heading(block) or is_separator(block):
            if out[-1]:
                out.append([])
            continue
        out[-1].append(block)
    return [s for s in out if s]


def chunk_text(text: str, lines_per_passage: int = 50, min_lines: int = 10) -> list[Passage]:
    if lines_per_passage <= 0:
        raise ValueError("lines_per_passage must be positive")
    passages: list[Passage] = []
    for index, blocks in enumerate(sections(text)):
        current: list[list[str]] = []  # paragraphs of the passage being built
        size = 0

        def flush():
            nonlocal current, size
            if size >= min_lines:
                body = "\n\n".join("\n".join(p) for p in current)
                passages.append(Passage(body, index, size))
            current, size = [], 0

        for block in blocks:
            lines = [line.strip() for line in block.lines]
            while lines:
                room = lines_per_passage - size
                if len(lines) <= room:
                    current.append(lines)
                    size += len(lines)
                    lines = []
                elif size and size >= min_lines:
                    flush()  # end the passage at a paragraph break
                else:
                    current.append(lines[:room])
                    size += room
                    lines = lines[room:]
                    flush()
            if size == lines_per_passage:
                flush()
        flush()
    return passages
