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


# ------------------------------------------------------------------ multi-volume novels
# Books outside the catalog: an 18th/19th-century novel printed in volumes repeats its
# title page before each volume (title, volume number, imprint, city, year), and an
# editor's bracketed note on the source of the text can sit under the title.

VOLUME_I, VOLUME_II, VOLUME_III = (
    STORY[: STORY.index("CHAPTER II.")].rstrip("\n"),
    STORY[STORY.index("CHAPTER II.") : STORY.index("CHAPTER III.")].rstrip("\n"),
    STORY[STORY.index("CHAPTER III.") :].rstrip("\n"),
)


def _spaced_title_page(volume: str) -> str:
    """Each part of the page its own paragraph, flush left, as most transcriptions set it."""
    return f"""THE DOOR
IN
THE LANE:

A TALE.

BY THE AUTHOR OF "THE KEY."

IN THREE VOLUMES.

VOL. {volume}.

LONDON:
PRINTED FOR T. HOOKHAM, JUN. AND E. T. HOOKHAM,
NO. 15, OLD BOND STREET.

1811."""


def _centred_title_page(volume: str) -> str:
    """Centred lines, mixed-case imprint, the year in Roman numerals."""
    return f"""                          THE DOOR IN THE LANE.
                                 A TALE.

                             VOLUME THE {volume}.

                                 London:
                   Printed for A. Millar, over-against
                     Catharine-street in the Strand.
                                MDCCXLIX."""


def _single_block_title_page(volume: str) -> str:
    """The whole page single-spaced, with the printer's line below the year."""
    return f"""THE DOOR IN THE LANE;
OR,
THE KEY OF SUMMER.
IN THREE VOLUMES.
VOL. {volume}.
EDINBURGH:
Printed by James Ballantyne and Co.
FOR LONGMAN, HURST, REES, ORME, AND BROWN,
LONDON.
1814."""


# The licence headers of the layouts above, up to where the book itself begins.
OLD_HEADER = OLD_LAYOUT[: OLD_LAYOUT.index("Produced by")]
CURRENT_HEADER = CURRENT_LAYOUT[: CURRENT_LAYOUT.index("THE DOOR IN THE LANE\n\nBY JANE DOE")]

SPACED_VOLUMES = f"""{OLD_HEADER}Produced by Someone Kind.




{_spaced_title_page("I")}




{VOLUME_I}

END OF VOL. I.




{_spaced_title_page("II")}




{VOLUME_II}

END OF VOL. II.




{_spaced_title_page("III")}




{VOLUME_III}

FINIS.



End of the Project Gutenberg EBook of The Door in the Lane, by Jane Doe
{LICENCE}"""

CENTRED_VOLUMES = f"""{CURRENT_HEADER}{_centred_title_page("FIRST")}


{VOLUME_I}


{_centred_title_page("SECOND")}


{VOLUME_II}


END OF THE SECOND VOLUME.


{_centred_title_page("THIRD")}


{VOLUME_III}

THE END.

*** END OF THE PROJECT GUTENBERG EBOOK THE DOOR IN THE LANE ***
{LICENCE}"""

SINGLE_BLOCK_VOLUMES = f"""{_single_block_title_page("I")}

{VOLUME_I}

{_single_block_title_page("II")}

{VOLUME_II}

{_single_block_title_page("III")}

{VOLUME_III}
"""


# A short running title page, as some reprints set it. Volume I is the longer, so its
# "END OF VOL. I." falls in the last third of the book, where the back-matter rule would
# cut off all of volume II unless it goes with the title page below it.
TWO_VOLUMES = f"""THE DOOR IN THE LANE




{VOLUME_I}

{VOLUME_II}

END OF VOL. I.

THE DOOR IN THE LANE.

VOL. II.

LONDON: PRINTED FOR THE AUTHOR, 1811.

{VOLUME_III}
"""


@pytest.mark.parametrize(
    "book",
    [SPACED_VOLUMES, CENTRED_VOLUMES, SINGLE_BLOCK_VOLUMES, TWO_VOLUMES],
    ids=["spaced", "centred", "single-block", "two-volumes"],
)
def test_title_pages_repeated_before_each_volume_are_removed(book):
    text, report = clean_book(book, "test")
    assert text == STORY
    assert "volume_title_page" in report.summary()


# One line, one blank line above the first chapter: it was kept as the chapter's heading.
ONE_LINE_NOTE = CURRENT_LAYOUT[: CURRENT_LAYOUT.index("CONTENTS")] + (
    "[The text is taken from the first edition of 1811.]\n\n" + CURRENT_LAYOUT[CURRENT_LAYOUT.index("CHAPTER I.") :]
)

PARAGRAPH_NOTE = OLD_LAYOUT.replace(
    "Produced by Someone Kind. HTML version by Someone Else.",
    """Produced by Someone Kind. HTML version by Someone Else.




THE DOOR IN THE LANE

A TALE

BY JANE DOE


[The text of this edition is taken from the first edition, printed in
three volumes for T. Hookham in 1811. The spelling and punctuation of
the original have been kept; obvious misprints have been corrected.]""",
)

MULTI_PARAGRAPH_NOTE = f"""THE DOOR IN THE LANE.




[Note: This etext was transcribed from the 1811 edition, in three
volumes, by a volunteer.

Words in italics in the original are shown between underscores; the
long s is printed as a modern s.]


{STORY}"""


@pytest.mark.parametrize(
    "book",
    [ONE_LINE_NOTE, PARAGRAPH_NOTE, MULTI_PARAGRAPH_NOTE],
    ids=["one-line", "paragraph", "multi-paragraph"],
)
def test_bracketed_note_on_the_source_of_the_text_is_removed(book):
    text, report = clean_book(book, "test")
    assert text == STORY
    assert "source_note" in report.summary()


# Story lines that look like a note, a volume heading or an imprint, next to a real note
# and a real title page: only the note and the page go. Each line stands for one guard
# of the rules: the story's last line above a title page ("MARA GREY."), a bracketed line
# above the first paragraph without words on editions, one after it with them, "VOLUME
# II" over an imprint-like line without city or year, "printed for" inside a line.
LOOKALIKE_STORY = f"""CHAPTER I.

THE DOOR

[A lane in winter. Enter MARA, with a lantern.]

{P1}

{P2}

“Printed for the fair, miss,” said the carter, and gave her a bill.

[Exit.]

MARA GREY.

VOLUME II

Printed for Mara, the bills lay thick in the snow.

{P3}

[Here the second edition of the evening paper came in at the window.]

{P4}

VOLUME III

The bills were printed for the fair of 1811.

CHAPTER III.

THE KEY

{P5}
"""

LOOKALIKE_TITLE_PAGE = "THE DOOR IN THE LANE.\n\nVOL. II.\n\nLONDON: PRINTED FOR THE AUTHOR, 1811."
LOOKALIKES = (
    "THE DOOR IN THE LANE\n\n\n\n\n[The text is taken from the first edition of 1811.]\n\n\n\n\n"
    + LOOKALIKE_STORY.replace(P2, "[Illustration: The door in the lane]\n\n" + P2).replace(
        "MARA GREY.", "MARA GREY.\n\n" + LOOKALIKE_TITLE_PAGE
    )
)


def test_story_lines_that_look_like_notes_volumes_or_imprints_are_kept():
    text, report = clean_book(LOOKALIKES, "test")
    assert text == LOOKALIKE_STORY
    removed = [item["what"] for item in report.removed]
    assert removed == ["illustration", "volume_title_page", "source_note", "front_matter"]
