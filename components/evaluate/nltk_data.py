"""The NLTK resources the evaluate stage reads, asked for by name.

    python -m components.evaluate.nltk_data --download-to .venv/nltk_data   # what `make run` does

This checks every resource and downloads the missing ones (online); with them already
there (`NLTK_DATA`, or the images, which download them at build time) it does nothing.

Each analysis calls `require(name)` before it reads a corpus, so a missing resource
is one clear message naming it and how to get it, instead of NLTK's long LookupError.
`punkt` is not used: tokenizing is a regular expression (`components.evaluate.text`).
"""

from __future__ import annotations

from components.common.errors import TaletuneError, main_guard

# The resources, by their downloader names, and the folder each lives in.
RESOURCES = {
    "opinion_lexicon": "corpora",
    "stopwords": "corpora",
    "wordnet": "corpora",
    "vader_lexicon": "sentiment",
    "sentence_polarity": "corpora",
    "movie_reviews": "corpora",  # only to measure the sentiment stand-in on documents it never trained on
}


def present(name: str) -> bool:
    import nltk

    for form in (f"{RESOURCES[name]}/{name}", f"{RESOURCES[name]}/{name}.zip"):  # unzipped, or the downloader's zip
        try:
            nltk.data.find(form)
            return True
        except LookupError:
            pass
    return False


def require(*names: str) -> None:
    """Raise one message naming every missing resource and how to install them."""
    import nltk

    missing = [n for n in names if not present(n)]
    if missing:
        what = f"NLTK resource {missing[0]!r} is" if len(missing) == 1 else f"NLTK resources {', '.join(map(repr, missing))} are"
        raise TaletuneError(
            f"{what} missing; install with `python -m nltk.downloader {' '.join(missing)}` (online), "
            f"or point NLTK_DATA at a folder that has them (searched: {', '.join(nltk.data.path[:4])})"
        )


def download_missing(names: list[str], folder: str) -> list[str]:
    """Download what is missing into `folder` (searched by NLTK when it is <venv>/nltk_data)."""
    import nltk

    missing = [n for n in names if not present(n)]
    for name in missing:
        nltk.download(name, download_dir=folder, quiet=True, raise_on_error=False)
    if folder not in nltk.data.path:
        nltk.data.path.append(folder)
    require(*names)  # offline, the downloads failed: one message with the fix
    return missing


def needed(config) -> list[str]:
    """The resources an evaluate config will read (for a check before a long run starts)."""
    from components.evaluate.sentiment_model import STANDINS

    names = ["stopwords", "wordnet"]  # topics; lemma matching
    if not config.lexicon.positive:
        names.append("opinion_lexicon")
    if config.sentiment.vader:
        names.append("vader_lexicon")
    if config.sentiment.model in STANDINS:
        names += ["sentence_polarity", "movie_reviews"]
    return names


@main_guard
def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m components.evaluate.nltk_data", description=__doc__.split("\n")[0])
    parser.add_argument("--download-to", metavar="DIR", help="download missing resources into DIR (else only check)")
    args = parser.parse_args(argv)
    names = list(RESOURCES)
    fetched = download_missing(names, args.download_to) if args.download_to else require(*names) or []
    print(f"NLTK data: {', '.join(names)} present" + (f" ({', '.join(fetched)} downloaded)" if fetched else ""))


if __name__ == "__main__":
    main()
