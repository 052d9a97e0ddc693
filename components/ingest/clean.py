"""Strip Project Gutenberg boilerplate, front matter and back matter from a book.

    python -m components.ingest clean ../shared/gutenberg/cache/epub/84/pg84.txt > frankenstein.txt

`clean_book(raw_text)` returns the story text and a report of everything it removed.
It works on books it has never seen: it finds the licence markers in all their
variants (old `*** START OF THIS PROJECT GUTENBERG EBOOK X ***`, `***START OF THE
...***`, the current layout with its `Title:`/`Author:` block, `End of Project
Gutenberg's X`, `*** START: FULL LICENSE ***`), then removes credits, transcriber's
notes, editors' bracketed notes on the source of the text, title pages (also those
repeated before each volume of a novel), tables of contents, prefaces and introductions,
`[Illustration]` tags, footnotes, indexes and publishers' lists by their shape, not by
book number.

Hand-written: no maintained library cleans Gutenberg texts this far (the `gutenberg`
package's `strip_headers` only handles the licence markers, and is unmaintained).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace

from components.common.errors import TaletuneError
from components.common.textblocks import Block, is_heading, is_prose, is_separator, join_blocks, split_blocks

# ------------------------------------------------------------------ licence markers

_GUTENBERG = r"PROJECT[ \t]+GUTENBERG(?:['’]S)?"
# The title inside a marker may wrap onto the next line, so [^*] spans newlines.
START_MARKER = re.compile(
    rf"^[ \t]*\*{{3}}[ \t]*START[ \t]+OF[ \t]+(?:THIS|THE)[ \t]+{_GUTENBERG}[ \t]+E-?(?:BOOK|TEXT)\b[^*]{{0,300}}\*{{3}}[ \t]*$"
    rf"|^[ \t]*\*END\*THE SMALL PRINT!.*$",
    re.IGNORECASE | re.MULTILINE,
)
END_MARKER = re.compile(
    rf"^[ \t]*\*{{3}}[ \t]*END[ \t]+OF[ \t]+(?:THIS|THE)[ \t]+{_GUTENBERG}"
    rf"|^[ \t]*End[ \t]+of[ \t]+(?:the[ \t]+|this[ \t]+)?{_GUTENBERG}"
    r"|^[ \t]*\*{3}[ \t]*START:[ \t]*FULL[ \t]+LICEN[CS]E"
    r"|^[ \t]*START:[ \t]*FULL[ \t]+LICEN[CS]E",
    re.IGNORECASE | re.MULTILINE,
)
# The first line of older files: "Project Gutenberg's X, by Y" / "The Project Gutenberg EBook of X, by Y".
_TITLE_LINE = re.compile(
    r"^\W*(?:the )?project gutenberg(?:['’]s)?(?: e-?book| etext)?(?: of)?,? (.+?)(?:,\s+by\s+(.+?))?\s*$", re.I | re.M
)
_HEADER_FIELD = re.compile(r"^(Title|Author|Translator|Editor|Illustrator|Release [Dd]ate|Language):[ \t]*(.+)$", re.M)

# ------------------------------------------------------------------ inline clutter

_ILLUSTRATION = re.compile(r"\[(?:Illustration|Frontispiece)[^\]]*\]", re.IGNORECASE)
_EDITOR_NOTE = re.compile(r"\[(?:Transcriber|Editor|Preparer)['’]?s['’]? note[^\]]*\]", re.IGNORECASE)
_FOOTNOTE_BLOCK = re.compile(r"\[Footnote[^\]]*\]", re.IGNORECASE)
_FOOTNOTE_REF = re.compile(r"\[(?:FN#|Footnote\s*)?\d+\]|(?<=[\w.,;:!?’”\"'])\(\d{1,3}\)")
_PAGE_MARK = re.compile(r"\{(?:pg\s*)?\d+\}", re.IGNORECASE)

# ------------------------------------------------------------------ named sections

_FRONT_NAMES = (
    r"table of contents|contents|preface|introduction|introductory note|foreword|prefatory note|"
    r"preparer['’]s note|transcriber['’]s notes?|editor['’]s note|publisher['’]s note|note|"
    r"list of illustrations|illustrations|list of plates|dedication|acknowledge?ments?|to the reader|"
    r"advertisement|biographical note|bibliography|chronology|how to get into this book"
)
FRONT_SECTION = re.compile(
    rf"^(?:(?:the|a|an|author['’]s|translator['’]s|editor['’]s)\s+){{0,2}}(?:{_FRONT_NAMES})(?:\s+(?:of|to)\s+.{{0,40}})?[.:]?$",
    re.IGNORECASE,
)
# Back matter: from here to the end of the book is not story.
_BACK_NAMES = (
    r"index|notes and references|appendix|appendices|glossary|errata|transcriber['’]s notes?:?|"
    r"advertisements?|uniform with this volume|by the same author.*|works by .{0,40}|"
    r"other books by .{0,40}|books by .{0,40}|typographical errors corrected.*|end of vol(?:ume|\.)? .{0,20}"
)
BACK_SECTION = re.compile(rf"^(?:{_BACK_NAMES})[.:]?$", re.IGNORECASE)
# Sections removed wherever they are, up to the next story heading.
FOOTNOTE_SECTION = re.compile(r"^(?:.{0,40}\s)?(?:foot-?notes?|notes|end-?notes)[.:]?$", re.IGNORECASE)
THE_END = re.compile(r"^(?:the end|finis)[.!]?$", re.IGNORECASE)

_CREDIT = re.compile(
    r"^(?:produced by|e-?text prepared by|prepared by|transcribed (?:from|by)|this (?:e-?text|e-?book|file) "
    r"(?:was|is)|scanned by|digitized by|proofread|html version by|note: project gutenberg|images of the "
    r"original|dashes; |proofreaders were|updated editions will replace|\(https?://|https?://)",
    re.IGNORECASE,
)
_TRANSCRIBER = re.compile(r"^\[?(?:transcriber|preparer|editor)['’]?s['’]? note", re.IGNORECASE)
_FOOTNOTE_TEXT = re.compile(r"^\s*(?:\[FN#\d+\]|\(\d{1,3}\)\s|\[\d{1,3}\]\s|\d{1,3}\.\s\s)")

# ------------------------------------------------------------------ editions in volumes

# A bracketed note above the story on where the text comes from: "[The text is taken from
# the first edition of 1811.]". Only these words mark it: a bracketed line of the story
# ("[Exit.]", "[A lane in winter.]") does not speak of editions or spelling.
_SOURCE_WORDS = re.compile(
    r"\b(?:editions?|e-?texts?|e-?books?|transcri\w+|spelling|punctuation|typograph\w*|misprints?|"
    r"proof-?read\w*|copy-?text|reprint\w*|facsimile)\b",
    re.IGNORECASE,
)
MAX_NOTE_BLOCKS = 4
MAX_NOTE_CHARS = 1500

# A novel printed in volumes repeats its title page before each one. The page is told by
# a line that is only a volume number, followed on the same page by the publisher's
# imprint and its city or year. A chapter heading "VOLUME II" is followed by story.
_VOLUME_LINE = re.compile(
    r"^(?:vol\.?|volume)\s+(?:[ivxlc]+|\d{1,2}|one|two|three|four|five|six|seven|eight|nine|ten|"
    r"the\s+(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|last))\.?$",
    re.IGNORECASE,
)
_CITY = r"[A-Z][A-Za-z]+(?:[ -][A-Z][A-Za-z]+)?:"  # "LONDON:", "New-York:"
# "PRINTED FOR T. HOOKHAM", "London: Printed by J. Smith", "Printed and sold by the Author":
# at the start of the line, and followed by a name, not by "the fair".
_IMPRINT_LINE = re.compile(
    rf"^(?:{_CITY}\s*)?(?i:printed|published|sold)(?:\s+(?i:and)\s+(?i:sold|published))?\s+(?i:for|by)\s+"
    r"(?:(?i:the)\s+)?[A-Z]"
)
_CITY_LINE = re.compile(rf"^{_CITY}")
# Years of printing: 1500-1999, or in Roman numerals, which then start with M.
_YEAR_AT_END = re.compile(r"(?:^|[\s,.])(?:1[5-9]\d\d|M[DCLXVI]{1,12})\.?$")
# What a title page carries above its volume number, besides the book's title.
_TITLE_PAGE_PHRASE = re.compile(
    r"^(?:in\s+(?:two|three|four|five|six|seven|eight|nine|ten|\d{1,2})\s+vol(?:ume)?s\.?"
    r"|(?:a|an)\s+(?:novel|romance|tale|story|history)\.?|by\s+.{1,60}|or,?)$",
    re.IGNORECASE,
)
_END_OF_VOLUME = re.compile(r"^end\s+of\s+(?:the\s+)?(?:vol(?:ume|\.)?\s*\w+|\w+\s+volume)\.?$", re.IGNORECASE)
# A heading that opens story text: the title page ends before it.
_STORY_HEADING = re.compile(r"^(?:chapter|book|part|letter|canto|section)\s+\w+", re.IGNORECASE)
MAX_TITLE_PAGE_BLOCKS = 6

# Share of the book, from each end, where front and back matter is looked for.
FRONT_SHARE = 0.25
BACK_SHARE = 0.35
MIN_CLEAN_CHARS = 1000


@dataclass
class CleanReport:
    """What `clean_book` did to one book, for the component's metadata."""

    book: str
    had_markers: bool
    line_endings: str
    original_chars: int
    kept_chars: int = 0
    kept_lines: int = 0
    metadata: dict = field(default_factory=dict)
    removed: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def note(self, what: str, text: str) -> None:
        text = text.strip("\n")
        if not text.strip():
            return
        lines = text.count("\n") + 1
        preview = " ".join(text.split())[:80]
        self.removed.append({"what": what, "lines": lines, "chars": len(text), "preview": preview})

    def summary(self) -> dict:
        """Characters removed per kind, e.g. {'licence': 18000, 'contents': 900}."""
        totals: dict[str, int] = {}
        for item in self.removed:
            totals[item["what"]] = totals.get(item["what"], 0) + item["chars"]
        return totals

    def to_dict(self) -> dict:
        return {**asdict(self), "summary": self.summary()}


def decode(data: bytes, book: str = "book") -> str:
    """Bytes to text: UTF-8 (with or without BOM), else Windows-1252; binaries are refused."""
    if not data.strip():
        raise TaletuneError(f"{book} is empty; check the file or download it again")
    sample = data[:65536]
    if b"\x00" in sample or sample.lstrip().lower().startswith((b"<!doctype html", b"<html", b"%pdf", b"pk\x03\x04")):
        raise TaletuneError(f"{book} is not a plain-text book (binary or HTML); use the .txt edition")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def clean_book(raw: str, book: str = "book") -> tuple[str, CleanReport]:
    """Return the story text of a Gutenberg book and a report of what was removed."""
    endings = "crlf" if "\r\n" in raw else ("cr" if "\r" in raw else "lf")
    text = raw.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    report = CleanReport(book=book, had_markers=False, line_endings=endings, original_chars=len(text))

    text = _strip_licence(text, report)
    text = _strip_inline(text, report)
    blocks = split_blocks(text)
    blocks = _drop_credits(blocks, report)
    blocks = _drop_volume_title_pages(blocks, report)
    blocks = _drop_source_notes(blocks, report)
    blocks = _drop_front_matter(blocks, report)
    blocks = _drop_back_matter(blocks, report)
    blocks = _drop_footnote_sections(blocks, report)

    while blocks and is_separator(blocks[0]):
        blocks.pop(0)
    while blocks and is_separator(blocks[-1]):
        blocks.pop()
    cleaned = join_blocks(blocks)
    report.kept_chars = len(cleaned)
    report.kept_lines = cleaned.count("\n")
    if len(cleaned.strip()) < MIN_CLEAN_CHARS:
        raise TaletuneError(
            f"{book} has only {len(cleaned.strip())} characters of story left after cleaning; "
            "it is nearly empty or not a book (see the removal report with `python -m components.ingest clean`)"
        )
    return cleaned, report


# ------------------------------------------------------------------ steps


def _strip_licence(text: str, report: CleanReport) -> str:
    start = START_MARKER.search(text)
    if start and start.start() < len(text) * 0.5:
        header = text[: start.end()]
        for key, value in _HEADER_FIELD.findall(header):
            report.metadata.setdefault(key.lower().replace(" ", "_"), value.strip())
        first = _TITLE_LINE.search(header.split("\n", 1)[0])
        if first:
            report.metadata.setdefault("title", first.group(1).strip())
            if first.group(2):
                report.metadata.setdefault("author", first.group(2).strip())
        report.note("header", header)
        report.had_markers = True
        text = text[start.end() :]
    end = END_MARKER.search(text)
    if end:
        report.note("licence", text[end.start() :])
        report.had_markers = True
        text = text[: end.start()]
    if not report.had_markers:
        report.warnings.append("no Project Gutenberg markers found; the text is used as is, with front matter removed")
    return text


def _strip_inline(text: str, report: CleanReport) -> str:
    for what, pattern in (
        ("illustration", _ILLUSTRATION),
        ("transcriber_note", _EDITOR_NOTE),
        ("footnote", _FOOTNOTE_BLOCK),
        ("footnote_ref", _FOOTNOTE_REF),
        ("page_mark", _PAGE_MARK),
    ):
        found = pattern.findall(text)
        if found:
            report.removed.append(
                {"what": what, "count": len(found), "chars": sum(map(len, found)), "preview": found[0][:80]}
            )
            text = pattern.sub("", text)
    # An illustration tag alone on its lines leaves blank lines; a tag inside a line, none.
    return re.sub(r"[ \t]+\n", "\n", text)


def _drop_credits(blocks: list[Block], report: CleanReport) -> list[Block]:
    """Production credits and 'HTML version' notes near the top, and transcriber's notes anywhere."""
    out: list[Block] = []
    in_credit = False
    head = max(10, len(blocks) // 20)
    for i, block in enumerate(blocks):
        text = block.text
        continuation = in_credit and (block.lines[0][:1].isspace() or text.lower().startswith(("or", "see", "(http")))
        if (i < head and _CREDIT.match(text)) or continuation or (_TRANSCRIBER.match(text) and len(text) < 2000):
            report.note("credits" if not _TRANSCRIBER.match(text) else "transcriber_note", "\n".join(block.lines))
            in_credit = True
            continue
        in_credit = False
        out.append(block)
    return out


def _lines(block: Block) -> list[str]:
    return [line.strip() for line in block.lines]


def _same_text(text: str) -> str:
    """Text compared across pages: case, spacing and punctuation aside."""
    return re.sub(r"[\W_]+", " ", text).strip().lower()


def _is_title_page_part(block: Block) -> bool:
    """Short lines, not running text: what a title page is set in."""
    lines = _lines(block)
    short = len(lines) <= 12 and all(len(line) <= 72 for line in lines)
    return short and not is_prose(block) and not is_separator(block)


def _has_volume_line(block: Block) -> bool:
    return any(_VOLUME_LINE.match(line) for line in _lines(block))


def _imprint_kinds(block: Block) -> set[str]:
    """Which parts of a publisher's imprint the block holds: 'imprint', 'city', 'year'."""
    kinds = set()
    for line in _lines(block):
        if _IMPRINT_LINE.match(line):
            kinds.add("imprint")
        if _CITY_LINE.match(line):
            kinds.add("city")
        if _YEAR_AT_END.search(line):
            kinds.add("year")
    return kinds


def _title_page_end(blocks: list[Block], i: int) -> int | None:
    """If block `i` holds a volume number and an imprint follows on the same page, the page's last block.

    The page ends at its last imprint, city or year line; it never runs into prose, a
    chapter heading or the next volume number. It needs the imprint and its city or year:
    a heading "VOLUME II" over a place and a date ("PARIS." "1793.") is the story's.
    """
    if not _has_volume_line(blocks[i]) or not _is_title_page_part(blocks[i]):
        return None
    kinds: set[str] = set()
    end = None
    for k in range(i, min(i + MAX_TITLE_PAGE_BLOCKS, len(blocks))):
        block = blocks[k]
        if k > i and (not _is_title_page_part(block) or _STORY_HEADING.match(block.text) or _has_volume_line(block)):
            break
        found = _imprint_kinds(block)
        if found:
            kinds |= found
            end = k
    return end if "imprint" in kinds and kinds & {"city", "year"} else None


def _title_page_start(blocks: list[Block], i: int, opening: set[str]) -> int:
    """The first block of the title page whose volume number is block `i`.

    Above the volume number it takes only headings a title page carries: the book's title
    as it stands at the opening of the book, "IN THREE VOLUMES.", "BY ...", and the
    previous volume's "END OF VOL. I.". The last line of the story above is none of these.
    """
    start = i
    while start > 0 and i - start < MAX_TITLE_PAGE_BLOCKS:
        above = blocks[start - 1]
        if not _is_title_page_part(above):
            break
        if _END_OF_VOLUME.match(above.text):
            return start - 1
        is_phrase = all(_TITLE_PAGE_PHRASE.match(line) for line in _lines(above))
        if not is_heading(above) or not (is_phrase or _same_text(above.text) in opening):
            break
        start -= 1
    return start


def _drop_volume_title_pages(blocks: list[Block], report: CleanReport) -> list[Block]:
    """Remove the title page repeated before each volume: title, volume number, imprint, city, year."""
    first_prose = next((i for i, block in enumerate(blocks) if is_prose(block)), len(blocks))
    opening = {_same_text(block.text) for block in blocks[:first_prose]}
    dropped: set[int] = set()
    for i in range(len(blocks)):
        end = None if i in dropped else _title_page_end(blocks, i)
        if end is None:
            continue
        start = _title_page_start(blocks, i, opening)
        report.note("volume_title_page", join_blocks(blocks[start : end + 1]))
        dropped.update(range(start, end + 1))
    return [block for i, block in enumerate(blocks) if i not in dropped]


def _source_note_end(blocks: list[Block], i: int) -> int | None:
    """If a bracketed note on the source of the text opens at block `i`, the block that closes it.

    The note may run over a few paragraphs; it holds no other bracket, and names an
    edition, a transcription or the spelling (`_SOURCE_WORDS`).
    """
    if not blocks[i].text.startswith("["):
        return None
    text = ""
    for k in range(i, min(i + MAX_NOTE_BLOCKS, len(blocks))):
        text += " " + blocks[k].text
        if text.count("[") > 1 or len(text) > MAX_NOTE_CHARS:
            return None
        if "]" in text:
            closed = text.rstrip().endswith(("]", "].")) and text.count("]") == 1
            return k if closed and _SOURCE_WORDS.search(text) else None
    return None


def _drop_source_notes(blocks: list[Block], report: CleanReport) -> list[Block]:
    """Remove bracketed notes on the source of the text, above the first paragraph of prose.

    Only above it: from there on a bracketed line is the story's own. The block below a
    note takes over the gap above the note, so that a title set apart above the note
    stays apart from the story (see `_heading_run`).
    """
    out: list[Block] = []
    gap_above_note = 0
    i = 0
    while i < len(blocks):
        end = _source_note_end(blocks, i)
        if end is not None:
            report.note("source_note", join_blocks(blocks[i : end + 1]))
            gap_above_note = max(gap_above_note, blocks[i].blank_before)
            i = end + 1
            continue
        block = blocks[i]
        if gap_above_note > block.blank_before:
            block = replace(block, blank_before=gap_above_note)
        gap_above_note = 0
        if is_prose(block):
            return out + [block] + blocks[i + 1 :]
        out.append(block)
        i += 1
    return out


def section_name(block: Block) -> str:
    """The normalised text of a one- or two-line block, for matching section names."""
    if len(block.lines) > 2 or len(block.text) > 60:
        return ""
    return re.sub(r"[_=*]", "", block.text).strip()


def _is_front_name(block: Block) -> bool:
    return bool(FRONT_SECTION.match(section_name(block)) or _TRANSCRIBER.match(block.text))


def _heading_run(blocks: list[Block], p: int) -> int:
    """Index of the first block of the heading lines just above prose block `p`.

    Walks back over headings and short lines ("CHAPTER 1", its one-line summary) but
    not across a wide gap (three blank lines or more), where title pages and tables of
    contents sit apart from the text, and not more than three blocks.
    """
    start = p
    while (
        start > 0
        and p - start < 3
        and blocks[start].blank_before < 3
        and (is_heading(blocks[start - 1]) or (len(blocks[start - 1].lines) <= 2 and not is_prose(blocks[start - 1])))
    ):
        start -= 1
    return start


def _starts_story(blocks: list[Block], i: int) -> bool:
    """A heading followed closely by prose: the start of a story or chapter."""
    if not is_heading(blocks[i]) or _is_front_name(blocks[i]):
        return False
    for nxt in blocks[i + 1 : i + 5]:
        if is_prose(nxt):
            return True
        if not (is_heading(nxt) or len(nxt.lines) <= 3):
            return False
    return False


def _drop_front_matter(blocks: list[Block], report: CleanReport) -> list[Block]:
    """Drop everything before the first story: title page, contents, preface, introduction.

    Without a named front section (CONTENTS, PREFACE, ...) near the top, the story
    starts at the first paragraph of prose, with its heading. With one, it starts at
    the first paragraph of prose after it whose heading is not another named section.
    """
    if not blocks:
        return blocks
    total = sum(len(b.lines) for b in blocks)
    seen, last_named = 0, -1
    for i, block in enumerate(blocks):
        if seen > total * FRONT_SHARE:
            break
        if _is_front_name(block):
            last_named = i
        seen += len(block.lines)

    start = None
    for p in range(last_named + 1, len(blocks)):
        if not is_prose(blocks[p]):
            continue
        run = _heading_run(blocks, p)
        if last_named < 0 or any(is_heading(blocks[k]) and not _is_front_name(blocks[k]) for k in range(run, p)):
            start = run
            break
    if start is None:
        return blocks
    if start > 0:
        has_contents = any(re.match(r"(table of )?contents", section_name(b), re.I) for b in blocks[:start])
        report.note("front_matter" + ("+contents" if has_contents else ""), join_blocks(blocks[:start]))
    return blocks[start:]


def _drop_back_matter(blocks: list[Block], report: CleanReport) -> list[Block]:
    """Cut from the first back-matter heading (index, notes, publisher's list) or the last 'THE END'."""
    total = sum(len(b.lines) for b in blocks)
    seen = 0
    cut = None
    for i, block in enumerate(blocks):
        seen += len(block.lines)
        if seen < total * (1 - BACK_SHARE):
            continue
        name = section_name(block)
        if THE_END.match(name):
            cut = i  # the last one wins: anthologies end every story with it
        elif cut is None and (BACK_SECTION.match(name) or block.text.lower().startswith("typographical errors corrected")):
            cut = i
            break
    if cut is None:
        return blocks
    report.note("back_matter", join_blocks(blocks[cut:]))
    return blocks[:cut]


def _drop_footnote_sections(blocks: list[Block], report: CleanReport) -> list[Block]:
    """Remove 'FOOTNOTES' sections (up to the next story heading) and loose footnote paragraphs."""
    out: list[Block] = []
    skipping = False
    for i, block in enumerate(blocks):
        if FOOTNOTE_SECTION.match(section_name(block)):
            skipping = True
        elif skipping and _starts_story(blocks, i):
            skipping = False
        if skipping or _FOOTNOTE_TEXT.match(block.lines[0]):
            report.note("footnotes", "\n".join(block.lines))
            continue
        out.append(block)
    return out

