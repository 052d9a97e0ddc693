"""The Gutenberg fetcher against a gutenberg.org look-alike on 127.0.0.1, a local mirror and S3."""

import pytest

from components.common.errors import TaletuneError
from components.common.catalog import load_catalog
from components.ingest.config import IngestConfig
from components.ingest.gutenberg import GutenbergFetcher
from components.ingest.stage import run_ingest

SMALL = {"genres": {"horror": {"prompt": "Write me a horror story", "books": [1952]}, "fairy_tale": {"prompt": "Write me a fairy tale", "books": [7074]}}}


def config(tmp_path, **kw):
    return IngestConfig(cache=str(tmp_path / "cache"), delay_seconds=0, backoff_seconds=0, **kw)


def test_download_is_polite_and_cached(http_mirror, tmp_path):
    fetcher = GutenbergFetcher(config(tmp_path, base_url=http_mirror.url))
    data, source = fetcher.fetch(1952)
    assert source == f"{http_mirror.url}/cache/epub/1952/pg1952.txt"
    assert data.startswith(b"Project Gutenberg's The Yellow Wallpaper")
    path, headers = http_mirror.requests[0]
    assert headers["User-Agent"].startswith("taletune/")
    # A second fetcher on the same cache makes no request.
    again = GutenbergFetcher(config(tmp_path, base_url=http_mirror.url))
    assert again.fetch(1952) == (data, "cache")
    assert len(http_mirror.requests) == 1


def test_waits_between_requests(http_mirror, tmp_path):
    import time

    fetcher = GutenbergFetcher(config(tmp_path, base_url=http_mirror.url).model_copy(update={"delay_seconds": 0.3}))
    start = time.monotonic()
    fetcher.fetch(1952)
    fetcher.fetch(7074)
    assert time.monotonic() - start >= 0.3


def test_retries_a_server_error_then_succeeds(http_mirror, tmp_path):
    http_mirror.failures["/cache/epub/7074/pg7074.txt"] = [(503, b"busy"), (503, b"busy")]
    data, _ = GutenbergFetcher(config(tmp_path, base_url=http_mirror.url)).fetch(7074)
    assert b"BEAUTY AND THE BEAST" in data
    assert [p for p, _ in http_mirror.requests].count("/cache/epub/7074/pg7074.txt") == 3


def test_falls_back_to_the_older_url(http_mirror, tmp_path, mirror):
    # Serve only files/<id>/<id>-0.txt for this book.
    http_mirror.failures["/cache/epub/43/pg43.txt"] = [(404, b"not here")]
    http_mirror.failures["/files/43/43-0.txt"] = [(200, (mirror / "cache/epub/43/pg43.txt").read_bytes())]
    data, source = GutenbergFetcher(config(tmp_path, base_url=http_mirror.url)).fetch(43)
    assert source.endswith("/files/43/43-0.txt") and b"JEKYLL" in data


def test_unknown_ebook_is_one_clear_error(http_mirror, tmp_path):
    with pytest.raises(TaletuneError, match=r"ebook 999999 was not found .*gutenberg.org/ebooks/999999"):
        GutenbergFetcher(config(tmp_path, base_url=http_mirror.url)).fetch(999999)


def test_an_html_page_is_not_a_book(http_mirror, tmp_path):
    http_mirror.failures["/cache/epub/1952/pg1952.txt"] = [(200, b"<!DOCTYPE html><html>Sorry</html>")]
    with pytest.raises(TaletuneError, match="HTML page"):
        GutenbergFetcher(config(tmp_path, base_url=http_mirror.url)).fetch(1952)


def test_size_cap(http_mirror, tmp_path):
    with pytest.raises(TaletuneError, match="larger than ingest.max_bytes"):
        GutenbergFetcher(config(tmp_path, base_url=http_mirror.url, max_bytes=1000)).fetch(1952)


def test_offline_without_mirror_names_the_book_and_the_ways_out(tmp_path):
    with pytest.raises(TaletuneError, match=r"ebook 1952 was not found.*TALETUNE_GUTENBERG_MIRROR"):
        GutenbergFetcher(config(tmp_path, offline=True)).fetch(1952)


def test_no_network_is_one_clear_error(tmp_path):
    from tests.conftest import free_port

    fetcher = GutenbergFetcher(config(tmp_path, base_url=f"http://127.0.0.1:{free_port()}", retries=0))
    with pytest.raises(TaletuneError, match="cannot download ebook 1952.*Offline"):
        fetcher.fetch(1952)


def test_mirror_folder_env_and_missing_mirror(mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("TALETUNE_GUTENBERG_MIRROR", str(mirror))
    assert GutenbergFetcher(config(tmp_path, offline=True)).fetch(84)[1] == "mirror"
    monkeypatch.setenv("TALETUNE_GUTENBERG_MIRROR", str(tmp_path / "nowhere"))
    with pytest.raises(TaletuneError, match="mirror .*nowhere does not exist"):
        GutenbergFetcher(config(tmp_path))


def test_mirror_over_http(http_mirror, tmp_path):
    fetcher = GutenbergFetcher(config(tmp_path, mirror=http_mirror.url, offline=True))
    assert fetcher.fetch(7074)[1].startswith(http_mirror.url)


def test_ingest_writes_books_manifest_and_cache(mirror, tmp_path):
    cfg = config(tmp_path, mirror=str(mirror), offline=True)
    manifest = run_ingest(load_catalog(SMALL), cfg, tmp_path / "out")
    assert [(b["key"], b["group"], b["source"]) for b in manifest["books"]] == [("7074", "fairy_tale", "mirror"), ("1952", "horror", "mirror")]
    assert manifest["books"][1]["title"] == "The Yellow Wallpaper"
    assert (tmp_path / "out" / "books" / "1952.txt").read_text().startswith("It is very seldom")
    assert {"header", "licence"} <= set(manifest["books"][0]["removed"])
    assert (tmp_path / "out" / "provenance.json").is_file()
    for name in ("1952.txt", "1952.clean.txt", "1952.clean.json", "7074.txt"):
        assert (tmp_path / "cache" / "books" / name).is_file()
    # Second run: everything from the cache, even with the mirror gone.
    again = run_ingest(load_catalog(SMALL), config(tmp_path, offline=True), tmp_path / "out2")
    assert {b["source"] for b in again["books"]} == {"cache"}
    assert (tmp_path / "out2" / "books" / "7074.txt").read_text() == (tmp_path / "out" / "books" / "7074.txt").read_text()


def test_ingest_with_the_book_cache_on_s3(mirror, s3, tmp_path):
    from components.common import storage

    cfg = IngestConfig(cache=f"{s3}/taletune", mirror=str(mirror), offline=True)
    run_ingest(load_catalog(SMALL), cfg, tmp_path / "out")
    assert storage.list_prefix(f"{s3}/taletune/books") == [
        "1952.clean.json", "1952.clean.txt", "1952.txt", "7074.clean.json", "7074.clean.txt", "7074.txt",
    ]
    again = run_ingest(load_catalog(SMALL), cfg.model_copy(update={"mirror": None}), tmp_path / "out2")
    assert {b["source"] for b in again["books"]} == {"cache"}


def test_a_users_own_text_file(tmp_path, mirror):
    own = tmp_path / "my tales.txt"
    own.write_text((mirror / "cache/epub/7074/pg7074.txt").read_text(encoding="utf-8"))
    catalog = load_catalog({"genres": {"fairy_tale": {"prompt": "p", "books": [{"path": str(own), "title": "Mine"}]}}})
    manifest = run_ingest(catalog, config(tmp_path, offline=True), tmp_path / "out")
    assert manifest["books"][0]["key"] == "file-my-tales" and manifest["books"][0]["title"] == "Mine"
