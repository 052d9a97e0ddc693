"""Evaluate story sets: lexicon words, topics, diversity and flags, per genre and overall.

    python -m components.evaluate runs/.../generate-4/stories --dataset runs/.../make-dataset/dataset --out eval/

Each set gets every analysis that can run on it: sentiment of its endings (a
classifier and VADER), lexicon words, topics, diversity and flags; and with the
dataset given, genre fidelity (a classifier trained on the dataset's passages),
copying from the training passages, and closeness to held-out passages of the genre. One that cannot (a missing NLTK
resource, an empty lexicon file, fewer stories than topics) is recorded with its
message in `metrics.json` under `errors`, and the others still run. Topics of every
set are aligned to the first set's, so a theme can be followed across sets. Outputs:
`metrics.json` (everything), `report.md` (the headline tables) and `provenance.json`.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from pathlib import Path

from components.common import storage
from components.common.errors import TaletuneError
from components.common.provenance import write_provenance, write_run_record
from components.evaluate.config import EvaluateConfig
from components.evaluate.intervals import share
from components.evaluate.stories import read_identity, read_set

log = logging.getLogger(__name__)


def run_evaluate(sources: list[str], config: EvaluateConfig, out_dir: str | Path, dataset: str | None = None,
                 reference: str | None = None, anchor: list[dict] | None = None, sentiment_folder: str | None = None) -> dict:
    """Evaluate each source and write the outputs; returns the metrics.

    `dataset` (the dataset stage's folder) enables genre fidelity, copying and closeness;
    `reference` is that dataset's prebuilt reference (built here when not given).
    Topics are aligned to `anchor` (another set's topics) when given, else to the first set's.
    `sentiment_folder` holds `sentiment.model` already fetched or trained.

    The result is kept in the storage layer under a key of everything it depends on (the
    stories, the dataset, the reference, the sentiment model, the settings and this
    code), so the same evaluation is never computed twice.
    """
    out = Path(out_dir)
    loaded = [(str(source), *read_set(source, config.data_per_genre, config.seed), read_identity(source)) for source in sources]
    key = result_key(loaded, config, dataset, reference, anchor, sentiment_folder)
    kept = storage.join(results_root(config), key)
    if storage.exists(storage.join(kept, "metrics.json")):
        log.info("reused: this evaluation was computed already (%s); nothing recomputed", kept)
        storage.copy_prefix(kept, str(out))
        write_run_record(out, reused=True, key=key)
        return {**json.loads((out / "metrics.json").read_text()), "reused": True}

    corpus = Corpus(dataset, config, reference) if dataset else None
    sets = []
    for source, name, records, notes, identity in loaded:
        sets.append({**identity, **evaluate_set(name, source, records, notes, config, corpus, sentiment_folder, identity["kind"])})
    first = next((s["topics"]["topics"] for s in sets if "topics" in s), None)
    if anchor or first:
        from components.evaluate.topics import align

        for s in sets:
            if "topics" in s and (anchor or s["topics"]["topics"] is not first):
                s["topics"]["aligned_to"] = align(anchor or first, s["topics"]["topics"])
    metrics = {"sets": sets, "config": config.model_dump(), "key": key}
    if corpus:
        metrics["genre_classifier"] = corpus.classifier_report()
    out.mkdir(parents=True, exist_ok=True)
    # Every story of every set, for the report's reading list.
    storage.write_text(str(out / "stories.jsonl"), "".join(json.dumps({**r, "set": name}) + "\n" for _, name, records, _, _ in loaded for r in records))
    storage.write_text(str(out / "report.md"), report(sets, metrics.get("genre_classifier")))
    write_provenance(out, config.model_dump(), seed=config.seed, sources=[str(s) for s in sources])
    storage.write_text(str(out / "metrics.json"), json.dumps(metrics, indent=2) + "\n")
    for name in ("stories.jsonl", "report.md", "provenance.json", "metrics.json"):  # metrics.json last: it marks the result whole
        storage.write_bytes(storage.join(kept, name), (out / name).read_bytes())
    write_run_record(out, reused=False, key=key)
    return {**metrics, "reused": False}


def results_root(config: EvaluateConfig) -> str:
    return config.results_root or storage.join(storage.cache_root(), "evaluations")


def result_key(loaded: list, config: EvaluateConfig, dataset: str | None, reference: str | None, anchor, sentiment_folder) -> str:
    """A hash of everything an evaluation depends on; any change gives a new key."""
    import hashlib

    from components.common.provenance import code_version, folder_digest

    h = hashlib.sha256()
    for source, name, records, notes, identity in loaded:
        h.update(json.dumps([name, identity, notes, [[r.get("id"), r["genre"], r["text"]] for r in records]], sort_keys=True, default=str).encode())
    for folder in (dataset and Path(dataset) / "data", reference, sentiment_folder):
        h.update(folder_digest(folder).encode() if folder else b"-")
    h.update(json.dumps([config.model_dump(exclude={"results_root"}), anchor, code_version("components.evaluate", "components.common")],
                        sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def evaluate_set(name: str, source: str, records: list[dict], notes: list[str], config: EvaluateConfig, corpus=None,
                 sentiment_folder: str | None = None, kind: str = "stories") -> dict:
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
    if config.sentiment.model:
        analyses["sentiment"] = lambda: sentiment_by_genre(records, config.sentiment.model, config.sentiment.model_cache, sentiment_folder)
    if config.sentiment.vader:
        analyses["sentiment_vader"] = lambda: vader_by_genre(records)
    if corpus:
        analyses["genre_fidelity"] = lambda: corpus.fidelity(records)
        analyses["copying"] = lambda: corpus.copying(records, leave_self_out=kind == "training_data")
        analyses["closeness"] = lambda: corpus.closeness(records)
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
    from components.common.flags import flags

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


def sentiment_by_genre(records: list[dict], model: str, cache: str | None = None, folder: str | None = None) -> dict:
    from components.evaluate.sentiment import classify, tally

    from components.evaluate.sentiment import load_classifier

    window = load_classifier(folder or model, cache).window
    reads = f"last 512 words, in windows of {window} tokens (mean logits)" if window < 512 else "last 512 words (the last 512 tokens of them)"
    return {"backend": "transformers", "model": model, "reads": reads, "by_genre": tally(records, classify(records, folder or model, cache=cache))}


def vader_by_genre(records: list[dict]) -> dict:
    from components.evaluate.sentiment import tally, vader

    return {"backend": "nltk vader", "model": "vader_lexicon", "reads": "last 512 words", "by_genre": tally(records, vader(records))}


class Corpus:
    """The dataset's training passages (for copying) and the reference built from it
    (genre classifier, held-out passage embeddings), loaded from `reference` if given."""

    def __init__(self, dataset: str, config: EvaluateConfig, reference: str | None = None):
        from components.evaluate.reference import Reference, passages

        self.config = config
        # Copying is measured against what the model was trained on: the genre passages.
        self.train_texts = [r["response"] for r in passages(dataset, "train") if r.get("prompt")]
        self.reference = Reference.load(reference) if reference else Reference.build(dataset, config)
        self._index = None
        self._vectors: dict[str, object] = {}  # story text -> embedding, shared by fidelity and closeness

    def classifier_report(self) -> dict:
        """Accuracy on the test split (whole held-out books when the dataset holds books out)."""
        return self.reference.summary["genre_classifier"]

    def embed(self, texts: list[str]):
        import numpy as np

        from components.evaluate.embed import embed_windows

        new = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        self._vectors.update(zip(new, embed_windows(new)))
        return np.stack([self._vectors[t] for t in texts])

    def fidelity(self, records: list[dict]) -> dict:
        texts = [r["text"] for r in records]
        predicted = self.reference.classifier.predict(texts, self.embed(texts))
        out = {}
        for genre in ["all", *sorted({r["genre"] for r in records})]:
            pairs = [(p, r["genre"]) for p, r in zip(predicted, records) if genre == "all" or r["genre"] == genre]
            out[genre] = {"as_asked": share(sum(p == g for p, g in pairs), len(pairs)), "predicted": dict(Counter(p for p, _ in pairs))}
        return out

    def copying(self, records: list[dict], leave_self_out: bool = False) -> dict:
        """Copied n-grams; the training data's own passages are measured against the others."""
        from components.evaluate.copying import NgramIndex

        if self._index is None:
            self._index = NgramIndex(self.train_texts, self.config.copy_ngram)
        return {g: self._index.summary([r["text"] for r in records if g == "all" or r["genre"] == g], leave_self_out)
                for g in ["all", *sorted({r["genre"] for r in records})]}

    def closeness(self, records: list[dict]) -> dict:
        """How far the stories are from held-out passages of their genre: a two-sample test
        (how often a classifier tells them apart, with an interval) and the Fréchet
        distance, per genre and for the whole set ("all").

        Each story is paired with a cut of a held-out passage of the story's length in words,
        at a seeded offset, so length alone cannot tell them apart (a 90-word story against a
        500-word passage would be told apart by its length). With more stories than held-out
        passages, a passage gives several cuts.
        """
        import random

        import numpy as np

        from components.evaluate.closeness import frechet, two_sample

        out, pairs = {}, []
        for genre in sorted({r["genre"] for r in records}):
            passages = self.reference.held_out.get(genre)
            if passages is None:
                out[genre] = {"error": self.reference.summary["closeness_errors"].get(genre, f"the dataset has no held-out {genre} passages")}
                continue
            stories = [r["text"] for r in records if r["genre"] == genre and r["text"].strip()]
            if len(stories) < 2 or len(passages) < 2:
                out[genre] = {"error": f"{len(stories)} non-empty {genre} stories and {len(passages)} held-out passages; closeness needs at least 2 of each"}
                continue
            rng = random.Random(f"{self.config.seed}-closeness-{genre}")
            order = rng.sample(range(len(passages)), len(passages))
            cut = []
            for i, story in enumerate(stories):
                words, size = passages[order[i % len(order)]].split(), max(1, len(story.split()))
                start = rng.randrange(max(1, len(words) - size + 1))
                cut.append(" ".join(words[start : start + size]))
            n = len(stories)
            a, b = self.embed(stories), self.embed(cut)
            pairs.append((a, b))
            out[genre] = {"frechet": round(frechet(a, b), 4), "two_sample": two_sample(a, b, self.config.seed), "stories": n, "passages": n}
        if len(pairs) > 1:
            a, b = np.vstack([a for a, _ in pairs]), np.vstack([b for _, b in pairs])
            out["all"] = {"frechet": round(frechet(a, b), 4), "two_sample": two_sample(a, b, self.config.seed), "stories": len(a), "passages": len(b)}
        elif pairs:
            out["all"] = next(v for v in out.values() if "two_sample" in v)
        return out


def headline(s: dict) -> dict[str, float]:
    """The few numbers of a set that the dashboard shows (KFP Metrics): overall shares and means."""
    out: dict[str, float] = {"stories": s.get("stories", {}).get("all", 0)}
    picks = {
        "positive_ending": ("sentiment", "by_genre", "all", "positive", "share"),
        "vader_positive": ("sentiment_vader", "by_genre", "all", "positive", "share"),
        "genre_as_asked": ("genre_fidelity", "all", "as_asked", "share"),
        "copied_8gram_share": ("copying", "all", "mean_copied_share"),
        "distinct_2": ("diversity", "all", "distinct_2"),
        "self_bleu": ("diversity", "all", "self_bleu"),
        "repeated_4gram_share": ("diversity", "all", "repeated_4gram_share"),
        "degenerate_share": ("flags", "all", "degenerate", "share"),
    }
    for name, path in picks.items():
        value = s
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, (int, float)):
            out[name] = float(value)
    for genre, entry in s.get("closeness", {}).items():
        if "frechet" in entry:
            out[f"frechet_{genre}"] = entry["frechet"]
        if "two_sample" in entry:
            out[f"two_sample_{genre}"] = entry["two_sample"]["accuracy"]
    coherence = [t["coherence"] for t in s.get("topics", {}).get("topics", []) if t.get("coherence") is not None]
    if coherence:
        out["topic_coherence_mean"] = round(sum(coherence) / len(coherence), 4)
    return out


def report(sets: list[dict], classifier: dict | None = None) -> str:
    """The headline numbers of every set, as Markdown (rendered by the Kubeflow dashboard)."""
    def pct(entry: dict | None) -> str:
        if not entry or entry.get("share") is None:
            return "-"
        low, high = entry["ci95"]
        return f"{entry['share']:.0%} ({low:.0%}-{high:.0%})"

    lines = ["# Story sets", "", "Shares with Wilson 95% intervals; closeness is the Fréchet distance to held-out passages (lower is closer).", ""]
    lines += ["| set | genre | stories | positive ending | VADER positive | as asked (genre) | copied 8-grams | closeness | distinct-2 | repeated 4-grams | degenerate |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in sets:
        for genre in ["all", *s.get("stories", {}).get("by_genre", {})]:
            n = s.get("stories", {}).get("all" if genre == "all" else "by_genre", {})
            n = n if genre == "all" else n.get(genre)
            d = s.get("diversity", {}).get(genre, {})
            lines.append(
                f"| {s['name']} | {genre} | {n} | {pct(s.get('sentiment', {}).get('by_genre', {}).get(genre, {}).get('positive'))} "
                f"| {pct(s.get('sentiment_vader', {}).get('by_genre', {}).get(genre, {}).get('positive'))} "
                f"| {pct(s.get('genre_fidelity', {}).get(genre, {}).get('as_asked'))} "
                f"| {s.get('copying', {}).get(genre, {}).get('mean_copied_share', '-')} "
                f"| {s.get('closeness', {}).get(genre, {}).get('frechet', '-')} | {d.get('distinct_2', '-')} "
                f"| {d.get('repeated_4gram_share', '-')} | {pct(s.get('flags', {}).get(genre, {}).get('degenerate'))} |"
            )
    if classifier and classifier.get("accuracy") is not None:
        balanced = f" (balanced over groups: {classifier['balanced_accuracy']:.0%})" if classifier.get("balanced_accuracy") is not None else ""
        lines += ["", f"Genre classifier (MiniLM embeddings, logistic regression): accuracy {classifier['accuracy']:.0%}{balanced} on "
                  f"{classifier['n']} held-out passages, by genre {classifier['by_label']}."]
    for s in sets:
        if "sentiment" in s:
            lines += ["", f"Sentiment of {s['name']}: {s['sentiment']['model']} on the {s['sentiment']['reads']}; VADER as a second opinion."]
        if "lexicon" in s:
            lines += ["", f"## Lexicon words: {s['name']} ({s['lexicon']['mode']} matching)", ""]
            for genre, counts in s["lexicon"]["by_genre"].items():
                for label in ("positive", "negative"):
                    top = ", ".join(f"{w['word']} ({w['per_1000']})" for w in counts[label][:10])
                    lines.append(f"- {genre}, {label} (per 1,000 words): {top or '-'}")
    for s in sets:
        if "topics" in s:
            lines += ["", f"## Topics: {s['name']}", ""]
            matched = {a["topic"]: a for a in s["topics"].get("aligned_to", [])}
            for t in s["topics"]["topics"]:
                a = matched.get(t["id"])
                pair = f" [~ reference topic {a['reference']}, overlap {a['overlap']}]" if a else ""
                lines.append(f"{t['id']}. (c_v {t['coherence']}){pair} {', '.join(t['words'][:10])}")
        for key, message in s["errors"].items():
            lines += ["", f"**{s['name']}: {key} not computed**: {message}"]
        for note in s["notes"]:
            lines += ["", f"Note ({s['name']}): {note}"]
    return "\n".join(lines) + "\n"
