"""Fetch plain-text books from Project Gutenberg, a mirror, or the book cache.

    python -m components.ingest fetch --out books/       # the default catalog

gutenberg.org serves `/cache/epub/<id>/pg<id>.txt`, with the older
`/files/<id>/<id>-0.txt` and `/files/<id>/<id>.txt` as fallbacks. The fetcher is
polite: it sends a User-Agent, waits between requests, retries with backoff (and
honours Retry-After), caps the size, and refuses an HTML page served in place of a book.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from components.common import storage
from components.common.errors import TaletuneError
from components.ingest.config import IngestConfig

log = logging.getLogger(__name__)


def book_paths(ebook: int) -> list[str]:
    """Paths of one book below a Gutenberg root, preferred first."""
    return [f"cache/epub/{ebook}/pg{ebook}.txt", f"files/{ebook}/{ebook}-0.txt", f"files/{ebook}/{ebook}.txt"]


class BookNotFound(TaletuneError):
    pass


class GutenbergFetcher:
    """Gets raw book bytes: book cache, then mirror, then gutenberg.org."""

    def __init__(self, config: IngestConfig):
        self.config = config
        self.cache = storage.join(config.cache_root(), "books")
        self.mirror = config.mirror_location()
        self._session = None
        self._last_request = 0.0
        self.requests = 0
        if self.mirror and not self.mirror.startswith(("http://", "https://")) and not Path(self.mirror).is_dir():
            raise TaletuneError(
                f"the Gutenberg mirror {self.mirror} does not exist; fix TALETUNE_GUTENBERG_MIRROR "
                "(or ingest.mirror) to point at a folder laid out as cache/epub/<id>/pg<id>.txt"
            )

    # -------------------------------------------------------------- public

    def raw_cache_uri(self, ebook: int) -> str:
        return storage.join(self.cache, f"{ebook}.txt")

    def fetch(self, ebook: int) -> tuple[bytes, str]:
        """Raw bytes of an ebook and where they came from ('cache', 'mirror' or a URL)."""
        cached = self.raw_cache_uri(ebook)
        if storage.exists(cached):
            return storage.read_bytes(cached), "cache"
        data, source = self._fetch_uncached(ebook)
        storage.write_bytes(cached, data)
        return data, source

    # -------------------------------------------------------------- sources

    def _fetch_uncached(self, ebook: int) -> tuple[bytes, str]:
        tried: list[str] = []
        if self.mirror:
            if self.mirror.startswith(("http://", "https://")):
                found = self._download(ebook, self.mirror, tried)
                if found:
                    return found
            else:
                for rel in book_paths(ebook):
                    path = Path(self.mirror, rel)
                    tried.append(str(path))
                    if path.is_file():
                        return self._check(path.read_bytes(), ebook, str(path)), "mirror"
        if not self.config.offline:
            found = self._download(ebook, self.config.base_url, tried)
            if found:
                return found
        ways = (
            "check the ebook number at https://www.gutenberg.org/ebooks/{0}, set TALETUNE_GUTENBERG_MIRROR "
            "to a mirror that has it, or put the file at {1}"
        ).format(ebook, self.raw_cache_uri(ebook))
        raise BookNotFound(f"ebook {ebook} was not found (tried {', '.join(tried)}); {ways}")

    def _download(self, ebook: int, base: str, tried: list[str]) -> tuple[bytes, str] | None:
        import requests

        for rel in book_paths(ebook):
            url = f"{base.rstrip('/')}/{rel}"
            tried.append(url)
            try:
                response = self._get(url)
            except requests.RequestException as exc:
                inner = exc.args[0] if exc.args and isinstance(exc.args[0], Exception) else exc
                reason = type(getattr(inner, "reason", inner)).__name__  # e.g. NameResolutionError
                raise TaletuneError(
                    f"cannot download ebook {ebook} from {url} ({reason}). Offline? Set TALETUNE_GUTENBERG_MIRROR "
                    f"to a local mirror (cache/epub/<id>/pg<id>.txt), or put the file at {self.raw_cache_uri(ebook)}"
                ) from None
            with response:
                if response.status_code == 404:
                    continue
                if response.status_code != 200:
                    raise TaletuneError(f"{url} answered HTTP {response.status_code} for ebook {ebook}; try again later")
                if "html" in response.headers.get("Content-Type", "").lower():
                    raise TaletuneError(f"{url} returned an HTML page, not the plain-text book {ebook}")
                data = self._read_capped(response, url)
            return self._check(data, ebook, url), url
        return None

    # -------------------------------------------------------------- http

    def _get(self, url: str):
        wait = self.config.delay_seconds - (time.monotonic() - self._last_request)
        if self.requests and wait > 0:
            time.sleep(wait)  # be polite to gutenberg.org: one request at a time, spaced out
        self.requests += 1
        try:
            return self.session.get(url, stream=True, timeout=self.config.timeout_seconds)
        finally:
            self._last_request = time.monotonic()

    @property
    def session(self):
        if self._session is None:
            import requests
            from requests.adapters import HTTPAdapter
            from urllib3.util.retry import Retry

            retry = Retry(
                total=self.config.retries,
                backoff_factor=self.config.backoff_seconds,
                status_forcelist=(429, 500, 502, 503, 504),
                allowed_methods=("GET",),
                respect_retry_after_header=True,
                raise_on_status=False,
            )
            session = requests.Session()
            session.headers["User-Agent"] = self.config.user_agent
            adapter = HTTPAdapter(max_retries=retry)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._session = session
        return self._session

    def _read_capped(self, response, url: str) -> bytes:
        limit = self.config.max_bytes
        chunks, size = [], 0
        for chunk in response.iter_content(chunk_size=1 << 16):
            size += len(chunk)
            if size > limit:
                raise TaletuneError(f"{url} is larger than ingest.max_bytes ({limit} bytes); raise the cap if it is a book")
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _check(data: bytes, ebook: int, where: str) -> bytes:
        head = data[:2048].lstrip().lower()
        if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head[:512]:
            raise TaletuneError(f"{where} is an HTML page, not the plain-text ebook {ebook}")
        if not data.strip():
            raise TaletuneError(f"{where} is empty; ebook {ebook} could not be read")
        return data
