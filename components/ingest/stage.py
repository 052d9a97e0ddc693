"""The ingest stage: catalog in, a folder of cleaned books out.

    python -m components.ingest fetch --out books/ [--catalog catalog.yaml]

Writes `<out>/books/<key>.txt` (story text), `<out>/books/<key>.json` (what the cleaner
removed), `<out>/manifest.json` (one entry per book) and `<out>/catalog.yaml`, plus
`provenance.json`. Raw and cleaned books are cached under `<cache>/books/`, so a second
run makes no request for a book it already has.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import yaml

from components.common import storage
from components.common.errors import TaletuneError
from components.common.provenance import write_provenance
from components.common.catalog import BookRef, Catalog
from components.ingest.clean import clean_book, decode
from components.ingest.config import IngestConfig
from components.ingest.gutenberg import GutenbergFetcher

log = logging.getLogger(__name__)

# Bump when the cleaner changes what it keeps, so cached cleaned books are redone.
CLEANER_VERSION = "1"


def run_ingest(catalog: Catalog, config: IngestConfig, out_dir: str | Path) -> dict:
    """Fetch and clean every catalog book into `out_dir`; returns the manifest."""
    out = Path(out_dir)
    storage.check_writable(config.cache_root())
    fetcher = GutenbergFetcher(config)
    entries = []
    for group, book in catalog.books():
        entry = ingest_book(book, group, fetcher)
        storage.write_text(str(out / "books" / f"{book.key}.txt"), entry.pop("text"))
        storage.write_text(str(out / "books" / f"{book.key}.json"), json.dumps(entry.pop("report"), indent=2) + "\n")
        entries.append(entry)
        log.info("%-8s %-10s %-45.45s %8d chars  (%s)", book.key, group, entry["title"], entry["chars"], entry["source"])
    manifest = {"cleaner_version": CLEANER_VERSION, "books": entries}
    storage.write_text(str(out / "manifest.json"), json.dumps(manifest, indent=2) + "\n")
    storage.write_text(str(out / "catalog.yaml"), yaml.safe_dump(catalog.model_dump(exclude_none=True), sort_keys=False))
    write_provenance(out, {"ingest": config.model_dump(), "catalog": catalog.model_dump(exclude_none=True)})
    return manifest


def ingest_book(book: BookRef, group: str, fetcher: GutenbergFetcher) -> dict:
    """One book: fetched (or read from the cache), cleaned, described."""
    if book.id is not None:
        text, report, source = _cleaned_from_cache(book.id, fetcher)
    else:
        text, report = clean_book(decode(storage.read_bytes(book.path), book.path), book.path)
        report = report.to_dict()
        source = book.path
    for warning in report["warnings"]:
        log.warning("book %s: %s", book.key, warning)
    meta = report.get("metadata", {})
    return {
        "key": book.key,
        "id": book.id,
        "path": book.path,
        "group": group,
        "title": book.title or meta.get("title") or _first_line(text),
        "author": meta.get("author"),
        "chars": len(text),
        "lines": text.count("\n"),
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
        "source": source,
        "removed": report["summary"],
        "warnings": report["warnings"],
        "text": text,
        "report": report,
    }


def _cleaned_from_cache(ebook: int, fetcher: GutenbergFetcher) -> tuple[str, dict, str]:
    clean_uri = storage.join(fetcher.cache, f"{ebook}.clean.txt")
    report_uri = storage.join(fetcher.cache, f"{ebook}.clean.json")
    if storage.exists(report_uri) and storage.exists(clean_uri):
        report = json.loads(storage.read_text(report_uri))
        if report.get("cleaner_version") == CLEANER_VERSION:
            return storage.read_text(clean_uri), report, "cache"
    raw, source = fetcher.fetch(ebook)
    try:
        text, rep = clean_book(decode(raw, f"ebook {ebook}"), f"ebook {ebook}")
    except TaletuneError as exc:
        raise TaletuneError(f"{exc} (source: {source})") from None
    report = {**rep.to_dict(), "cleaner_version": CLEANER_VERSION}
    storage.write_text(clean_uri, text)
    storage.write_text(report_uri, json.dumps(report, indent=2) + "\n")
    return text, report, source


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "untitled")[:80]
