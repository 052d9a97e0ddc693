"""Settings of the ingest stage (defaults, then YAML `ingest:`, then `--set ingest.x=y`)."""

from __future__ import annotations

import os

from pydantic import Field

from components.common.config import StrictModel

DEFAULT_USER_AGENT = "taletune/0.1 (+https://github.com/taletune/taletune; polite book fetcher)"


class IngestConfig(StrictModel):
    # Where raw and cleaned books are cached: a folder or an s3:// prefix. Books live
    # under <cache>/books/. None means $TALETUNE_CACHE, else ~/.cache/taletune.
    cache: str | None = None
    # A Gutenberg mirror in gutenberg.org's layout (cache/epub/<id>/pg<id>.txt): a
    # folder or an http(s) URL. None means $TALETUNE_GUTENBERG_MIRROR, if set.
    mirror: str | None = None
    base_url: str = "https://www.gutenberg.org"
    # Never download; use the cache and the mirror only.
    offline: bool = False
    user_agent: str = DEFAULT_USER_AGENT
    delay_seconds: float = Field(default=2.0, ge=0)
    retries: int = Field(default=3, ge=0)
    backoff_seconds: float = Field(default=1.0, ge=0)
    timeout_seconds: float = Field(default=60.0, gt=0)
    max_bytes: int = Field(default=30_000_000, gt=0)

    def cache_root(self) -> str:
        from components.common.storage import cache_root

        return self.cache or cache_root()

    def mirror_location(self) -> str | None:
        return self.mirror or os.environ.get("TALETUNE_GUTENBERG_MIRROR") or None
