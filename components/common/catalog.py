"""The genre catalog: genres, their prompts, and their books.

    python -m components.ingest fetch --catalog my_catalog.yaml --out books/

```yaml
genres:
  horror: {prompt: "Write me a horror story", books: [345, 84, 43]}
  fairy_tale: {prompt: "Write me a fairy tale", books: [1597, {path: my_tales.txt, title: My Tales}]}
other: {books: [1342, 1661]}   # negatives for the genre classifier, never trained on
```
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from components.common.config import StrictModel, read_yaml, validate
from components.common.errors import TaletuneError

OTHER = "other"


class BookRef(StrictModel):
    """A Project Gutenberg ebook number, or a text file (local path or s3:// URI)."""

    id: int | None = Field(default=None, gt=0)
    path: str | None = None
    title: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_number(cls, value):
        if isinstance(value, bool):
            raise ValueError("a book is an ebook number or {path: ..., title: ...}")
        if isinstance(value, int):
            return {"id": value}
        if isinstance(value, str) and value.isdigit():
            return {"id": int(value)}
        return value

    @model_validator(mode="after")
    def _one_source(self):
        if (self.id is None) == (self.path is None):
            raise ValueError("give a book either an ebook number (id) or a file (path), not both or neither")
        return self

    @property
    def key(self) -> str:
        """A stable, file-name-safe name: the ebook number, or 'file-<stem>'."""
        if self.id is not None:
            return str(self.id)
        stem = Path(self.path.rstrip("/")).stem
        return "file-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-") or "book")


class Genre(StrictModel):
    prompt: str = Field(min_length=1)
    books: list[BookRef]


class OtherGroup(StrictModel):
    books: list[BookRef] = []


class Catalog(StrictModel):
    genres: dict[str, Genre]
    other: OtherGroup = OtherGroup()

    @field_validator("genres")
    @classmethod
    def _genres_have_books(cls, genres: dict[str, Genre]):
        if not genres:
            raise ValueError("the catalog has no genres; add at least one under `genres:`")
        for name, genre in genres.items():
            if name == OTHER:
                raise ValueError(f"'{OTHER}' is reserved for negative examples; put it at the top level")
            if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
                raise ValueError(f"genre name {name!r} may use only letters, digits, '_' and '-'")
            if not genre.books:
                raise ValueError(f"genre {name!r} has no books; list ebook numbers under genres.{name}.books")
        return genres

    def groups(self) -> dict[str, list[BookRef]]:
        """Every group's books: genres by name, then 'other'.

        Sorted, because a catalog passed as a KFP parameter comes back with its keys
        reordered, and the dataset must not depend on how the catalog travelled.
        """
        out = {name: self.genres[name].books for name in sorted(self.genres)}
        if self.other.books:
            out[OTHER] = self.other.books
        return out

    def books(self) -> list[tuple[str, BookRef]]:
        """(group, book) for every distinct book, in catalog order."""
        seen: dict[str, str] = {}
        out = []
        for group, books in self.groups().items():
            for book in books:
                if book.key in seen:
                    raise TaletuneError(f"book {book.key} is listed under both {seen[book.key]!r} and {group!r}")
                seen[book.key] = group
                out.append((group, book))
        return out

    def prompt(self, group: str) -> str | None:
        return self.genres[group].prompt if group in self.genres else None


def default_catalog_path() -> str:
    return str(resources.files("components.ingest") / "catalog.yaml")


def load_catalog(source: str | Path | dict | None = None) -> Catalog:
    """A catalog from a YAML file or URI, an inline mapping, or the packaged default."""
    if isinstance(source, dict):
        return validate(Catalog, source, source="catalog")
    path = str(source) if source and str(source) != "default" else default_catalog_path()
    return validate(Catalog, read_yaml(path), source=f"catalog {path}")
