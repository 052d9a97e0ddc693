"""Golden values for the cleaner: hand-written books in each header layout."""

import pytest

from components.common.errors import TaletuneError
from components.ingest.clean import clean_book, decode

P1 = """Once upon a time there was a little door at the end of a long and
crooked lane, and nobody in the village could say where it led, for
nobody had ever been brave enough to open it and look inside."""
P2 = """One winter evening a girl called Mara took the old iron key from
her grandmother's drawer and walked down the lane in the snow, with a
lantern in one hand and the key held tightly in the other."""
P3 = """The key turned with a sound like a sigh. Behind the door there was
a garden where it was always summer, and in the garden an old woman
sat spinning thread out of the light of the evening sun."""
P4 = """Mara stayed until the stars came out, and when she went home she
locked the door behind her and put the key back in the drawer, and
she never told anyone what she had seen, not even her grandmother."""
P5 = """Years later, when Mara was old and had a granddaughter of her own,
she took the key out of the drawer one evening and pressed it into the
child's small hand, and said only: "Go gently, and close it after you."
"""[:-1]
# Long enough to pass the "nearly empty" check, short enough to read.
STORY = f"CHAPTER I.\n\nTHE DOOR\n\n{P1}\n\n{P2}\n\nCHAPTER II.\n\nTHE GARDEN\n\n{P3}\n\n{P4}\n\nCHAPTER III.\n\nTHE KEY\n\n{P5}\n"

LICENCE = """Updated editions will replace the previous one--the old editions will
be renamed.

Creating the works from print editions not protected by U.S. copyright
law means that no one owns a United States copyright in these works.
"""

CURRENT_LAYOUT = f"""\ufeffThe Project Gutenberg eBook of The Door in the Lane, by Jane Doe

This ebook is for the use of anyone anywhere in the United States and
most other parts of the world at no cost and with almost no restrictions
whatsoever. You may copy it, give it away or re-use it under the terms
of the Project Gutenberg License included with this ebook or online
at www.gutenberg.org.

Title: The Door in the Lane

Author: Jane Doe

Release date: March 3, 2024 [eBook #99999]

Language: English

Credits: Someone and the Online Distributed Proofreading Team


*** START OF THE PROJECT GUTENBERG EBOOK THE DOOR IN THE LANE ***




THE DOOR IN THE LANE

BY JANE DOE




CONTENTS

  I. The Door
 II. The Garden




{STORY.replace(P2, P2 + chr(10) + chr(10) + "[Illustration: Mara in the snow]")}

THE END




*** END OF THE PROJECT GUTENBERG EBOOK THE DOOR IN THE LANE ***

{LICENCE}
"""

OLD_LAYOUT = f"""The Project Gutenberg EBook of The Door in the Lane, by Jane Doe

This eBook is for the use of anyone anywhere at no cost and with
almost no restrictions whatsoever.

Title: The Door in the Lane

Author: Jane Doe

Release Date: June 1, 2009 [EBook #99998]

Language: English

Character set encoding: ASCII

*** START OF THIS PROJECT GUTENBERG EBOOK THE DOOR IN THE
LANE ***




Produced by Someone Kind. HTML version by Someone Else.




{STORY}



End of the Project Gutenberg EBook of The Door in the Lane, by Jane Doe

*** END OF THIS PROJECT GUTENBERG EBOOK THE DOOR IN THE LANE ***

***** This file should be named 99998.txt or 99998.zip *****
{LICENCE}"""

NO_SPACE_LAYOUT = f"""Title: The Door in the Lane

Author: Jane Doe

***START OF THE PROJECT GUTENBERG EBOOK THE DOOR IN THE LANE***


E-text prepared by Someone and the Project Gutenberg Online Distributed
Proofreading Team


{STORY.replace(P3, P3 + "[1]")}

FOOTNOTES:

[1] A garden of the old stories.


***END OF THE PROJECT GUTENBERG EBOOK THE DOOR IN THE LANE***

*** START: FULL LICENSE ***

THE FULL PROJECT GUTENBERG LICENSE
{LICENCE}"""


@pytest.mark.parametrize("layout", [CURRENT_LAYOUT, OLD_LAYOUT, NO_SPACE_LAYOUT], ids=["current", "old", "no-space"])
def test_every_header_layout_gives_the_same_story(layout):
    text, report = clean_book(layout, "test")
    assert text == STORY
    assert report.had_markers
    assert report.metadata["title"] == "The Door in the Lane"
    assert report.metadata["author"] == "Jane Doe"


def test_report_says_what_was_removed():
    _, report = clean_book(CURRENT_LAYOUT, "test")
    summary = report.summary()
    assert {"header", "licence", "illustration", "front_matter+contents", "back_matter"} <= set(summary)
    assert report.line_endings == "lf"
    assert report.metadata["release_date"] == "March 3, 2024 [eBook #99999]"
    _, old = clean_book(OLD_LAYOUT, "test")
    assert "credits" in old.summary()
    _, no_space = clean_book(NO_SPACE_LAYOUT, "test")
    assert {"credits", "footnotes", "footnote_ref"} <= set(no_space.summary())


def test_crlf_is_normalised_and_paragraphs_kept():
    text, report = clean_book(OLD_LAYOUT.replace("\n", "\r\n"), "test")
    assert report.line_endings == "crlf"
    assert text == STORY
    assert "\r" not in text and "\n\n" in text


def test_a_file_without_markers_is_used_with_a_warning():
    text, report = clean_book(STORY, "mine.txt")
    assert text == STORY
    assert not report.had_markers
    assert report.warnings and "no Project Gutenberg markers" in report.warnings[0]


def test_nearly_empty_after_cleaning_is_an_error():
    book = CURRENT_LAYOUT.replace(STORY.replace(P2, P2 + "\n\n[Illustration: Mara in the snow]"), "Just a line.\n")
    with pytest.raises(TaletuneError, match="nearly empty"):
        clean_book(book, "ebook 99999")


@pytest.mark.parametrize(
    "data, problem",
    [(b"", "empty"), (b"   \n\n", "empty"), (b"\x89PNG\r\n\x1a\n\x00\x00", "not a plain-text"), (b"<!DOCTYPE html><html>", "HTML")],
)
def test_decode_refuses_what_is_not_a_text(data, problem):
    with pytest.raises(TaletuneError, match=problem):
        decode(data, "ebook 1")


def test_decode_falls_back_to_windows_1252():
    assert decode("caf\u00e9 \u2014 na\u00efve".encode("cp1252")) == "caf\u00e9 \u2014 na\u00efve"
    assert decode("\ufeffhello".encode("utf-8")) == "hello"
