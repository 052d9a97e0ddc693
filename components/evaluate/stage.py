"""Evaluate story sets: lexicon words, topics, diversity and flags, per genre and overall.

    python -m components.evaluate runs/.../generate-4/stories runs/.../make-dataset/dataset --out eval/

Each set gets every analysis that can run on it. One that cannot (a missing NLTK
resource, an empty lexicon file, fewer stories than topics) is recorded with its
message in `metrics.json` under `errors`, and the others still run. Topics of every
set are aligned to the first set's, so a theme can be followed across sets. Outputs:
`metrics.json` (everything), `report.md` (the headline tables) and `provenance.json`.

Still to come (see the evaluate issue): sentiment by genre, genre fidelity, copying
and closeness to the genre corpus.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from pathlib import Path

from components.common import storage
from components.common.errors import TaletuneError
from components.common.provenance import write_provenance
from components.evaluate.config import EvaluateConfig
from components.evaluate.intervals import share
from components.evaluate.stories import read_set

log = logging.getLogger(__name__)


def run_evaluate(sources: list[str], config: EvaluateConfig, out_dir: str | Path) -> dict:
    """Evaluate each source and write the outputs; returns the metrics."""
    out = Path(out_dir)
    sets = []
    for source in sources:
        name, records, notes = read_set(source)
        sets.append(evaluate_set(name, str(source), records, notes, config))
    reference = next((s for s in sets if "topics" in s), None)
    if reference:
        from components.evaluate.topics import align

        for s in sets:
            if "topics" in s and s is not reference:
                s["topics"]["aligned_to_first"] = align(reference["topics"]["topics"], s["topics"]["topics"])
    metrics = {"sets": sets, "config": config.model_dump()}
    out.mkdir(parents=True, exist_ok=True)
    storage.write_text(str(out / "metrics.json"), json.dumps(metrics, indent=2) + "\n")
    storage.write_text(str(out / "report.md"), report(sets))
    write_provenance(out, config.model_dump(), seed=config.seed, sources=[str(s) for s in sources])
    return metrics


def evaluate_set(name: str, source: str, records: list[dict], notes: list[str], config: EvaluateConfig) -> dict:
    result: dict = {"name": name, "source": source, "notes": notes, "errors": {}, "seconds": {}}
    if not records:
        result["errors"]["all"] = f"{source} has no stories; nothing to evaluate"
        return result
    genres = Counter(r["genre"] for r in records)
    result["stories"] = {"all": len(records), "by_genre": dict(sorted(genres.items()))}
    texts = [r["text"] for r in records]
    analyses = {
        "flags": lambda: flag_shares(records),
        "diversity": lambda: diversity_by_genre(records, config),
        "lexicon": lambda: lexicon_words(records, config),
        "topics": lambda: topic_model(texts, config),
    }
    for key, analysis in analyses.items():
        started = time.perf_counter()
        try:
            result[key] = analysis()
        except TaletuneError as exc:
            log.error("%s: %s analysis skipped: %s", name, key, exc)
            result["errors"][key] = str(exc)
        result["seconds"][key] = round(time.perf_counter() - started, 3)
    return result


def flag_shares(records: list[dict]) -> dict:
    """Shares of empty and degenerate stories (flags from the generate stage, or recomputed)."""
    from components.generate.flags import flags

    def marks(r):
        return r.get("flags") or flags(r["text"], r.get("prompt") or "")

    out = {}
    for genre in ["all", *sorted({r["genre"] for r in records})]:
        chosen = [r for r in records if genre == "all" or r["genre"] == genre]
        out[genre] = {
            "empty": share(sum(marks(r)["empty"] for r in chosen), len(chosen)),
            "degenerate": share(sum(any(marks(r).values()) for r in chosen), len(chosen)),
        }
    return out


def diversity_by_genre(records: list[dict], config: EvaluateConfig) -> dict:
    from components.evaluate.diversity import diversity

    out = {"all": diversity([r["text"] for r in records], config.self_bleu_sample, config.seed)}
    for genre in sorted({r["genre"] for r in records}):
        out[genre] = diversity([r["text"] for r in records if r["genre"] == genre], config.self_bleu_sample, config.seed)
    return out


def lexicon_words(records: list[dict], config: EvaluateConfig) -> dict:
    from components.evaluate.lexicon import Matcher, load_lexicon, top_words

    positive, negative = load_lexicon(config.lexicon.positive, config.lexicon.negative)
    result = top_words(records, Matcher(config.lexicon.match, positive, negative), config.lexicon.top_k)
    result["lexicon"] = {"positive": len(positive), "negative": len(negative),
                         "source": "opinion_lexicon (Hu and Liu)" if not config.lexicon.positive else [config.lexicon.positive, config.lexicon.negative]}
    return result


def topic_model(texts: list[str], config: EvaluateConfig) -> dict:
    from components.evaluate.topics import topics

    t = config.topics
    return topics(texts, t.n, t.top_n, config.seed, t.passes, t.normalize)


def report(sets: list[dict]) -> str:
    """The headline numbers of every set, as Markdown (rendered by the Kubeflow dashboard)."""
    lines = ["# Story sets", ""]
    lines += ["| set | stories | distinct-2 | repeated 4-grams | self-BLEU | degenerate | top negative words |", "|---|---|---|---|---|---|---|"]
    for s in sets:
        d = s.get("diversity", {}).get("all", {})
        deg = s.get("flags", {}).get("all", {}).get("degenerate", {})
        neg = ", ".join(w["word"] for w in s.get("lexicon", {}).get("all", {}).get("negative", [])[:5])
        lines.append(f"| {s['name']} | {s.get('stories', {}).get('all', 0)} | {d.get('distinct_2', '-')} | {d.get('repeated_4gram_share', '-')} "
                     f"| {d.get('self_bleu', '-')} | {deg.get('share', '-')} {deg.get('ci95', '')} | {neg} |")
    for s in sets:
        if "topics" in s:
            lines += ["", f"## Topics: {s['name']}", ""]
            lines += [f"{t['id']}. ({t['coherence']}) {', '.join(t['words'][:10])}" for t in s["topics"]["topics"]]
        for key, message in s["errors"].items():
            lines += ["", f"**{s['name']}: {key} not computed**: {message}"]
        for note in s["notes"]:
            lines += ["", f"Note ({s['name']}): {note}"]
    return "\n".join(lines) + "\n"
