"""Exact and near-duplicate passages, so no passage and its near copy sit in two splits.

Exact: the same words after case and whitespace folding. Near: MinHash over word
5-gram shingles with LSH (datasketch), at a Jaccard threshold. The first occurrence,
in catalog order, is kept.
"""

from __future__ import annotations

import hashlib
import re

_WORD = re.compile(r"[a-z0-9']+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def duplicates(texts: list[str], threshold: float = 0.8, num_perm: int = 128, seed: int = 1) -> dict[int, tuple[str, int]]:
    """Map index -> (kind, index of the earlier passage it duplicates), for every duplicate."""
    from datasketch import MinHash, MinHashLSH

    found: dict[int, tuple[str, int]] = {}
    exact: dict[str, int] = {}
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    hashes: dict[int, MinHash] = {}
    for i, text in enumerate(texts):
        words = _words(text)
        digest = hashlib.sha1(" ".join(words).encode()).hexdigest()
        if digest in exact:
            found[i] = ("exact", exact[digest])
            continue
        exact[digest] = i
        shingles = {" ".join(words[j : j + 5]) for j in range(max(1, len(words) - 4))}
        mh = MinHash(num_perm=num_perm, seed=seed)
        mh.update_batch([s.encode() for s in shingles])
        # LSH returns candidates; keep those whose estimated Jaccard really passes.
        match = [j for j in lsh.query(mh) if mh.jaccard(hashes[j]) >= threshold]
        if match:
            found[i] = ("near", min(match))
            continue
        lsh.insert(i, mh)
        hashes[i] = mh
    return found
