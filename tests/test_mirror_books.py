"""The cleaner on every book of the mirror: no licence left, the whole story kept."""

import re
from pathlib import Path

import pytest
import yaml

from components.ingest.clean import clean_book, decode

BOUNDS = yaml.safe_load((Path(__file__).parent / "data" / "story_bounds.yaml").read_text())
LEFTOVERS = re.compile(
    r"project gutenberg|gutenberg\.org|gutenberg-tm|\*\*\* ?(start|end)|full license|small print|"
    r"^produced by|^e-text prepared by|\[illustration|transcriber['’]s note|end of (the )?project",
    re.IGNORECASE | re.MULTILINE,
)


def test_every_mirrored_book_has_golden_bounds(mirror):
    ids = {int(p.name) for p in (mirror / "cache" / "epub").iterdir()}
    assert ids == set(BOUNDS), "add the new book's first and last story lines to tests/data/story_bounds.yaml"


@pytest.mark.parametrize("ebook", sorted(BOUNDS))
def test_book_is_clean_and_whole(mirror, ebook):
    raw = (mirror / "cache" / "epub" / str(ebook) / f"pg{ebook}.txt").read_bytes()
    text, report = clean_book(decode(raw, str(ebook)), str(ebook))
    assert report.had_markers
    leftover = LEFTOVERS.search(text)
    assert leftover is None, f"boilerplate left: ...{text[max(0, leftover.start() - 80): leftover.end() + 80]}..."

    lines = [line.strip() for line in text.split("\n") if line.strip()]
    want = BOUNDS[ebook]
    assert want["first"] in lines, "the first story line was removed"
    assert want["last"] in lines, "the last story line was removed"
    assert lines.index(want["first"]) < want.get("start_within", 12), f"front matter left before: {lines[:5]}"
    from_end = len(lines) - 1 - max(i for i, line in enumerate(lines) if line == want["last"])
    assert from_end < want.get("end_within", 12), f"back matter left after: {lines[-5:]}"
