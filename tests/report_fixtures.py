"""Evaluation folders for the report's tests, built from known numbers (no model, no NLTK).

    folders = build(tmp_path)   # training data, then 2 models x levels 0, 1, 2

Each folder is what an evaluate task writes: `metrics.json` with one set (the fields of
`components.evaluate.stage.evaluate_set` plus `kind`, `model`, `level`, `training` and
`format`) and `stories.jsonl` beside it. The numbers are chosen so that findings are
known: smollm2-135m's genre fidelity rises from 20% to 80% (intervals apart), gemma3-270m's
from 48% to 52% (within the intervals); gemma3-270m level 1 lost its sentiment, topics and
closeness to errors and has no stories.jsonl.
"""

from __future__ import annotations

import json
from pathlib import Path

from components.evaluate.intervals import share

GENRES = ("fairy_tale", "horror")
PER_GENRE = 50
CLASSIFIER = {"accuracy": 0.88, "balanced_accuracy": 0.86, "n": 120, "by_label": {"fairy_tale": 0.9, "horror": 0.825, "other": 0.925},
              "test_books": ["1952", "7074"], "unseen_books": True}
EVIL = "It ended <script>alert('boo')</script> & </details> \"here\"."

# name -> fidelity (of 100), positive endings (of 50 per genre), two-sample accuracy and interval,
# Fréchet distance, mean topic overlap, training record
SETS = {
    ("training data", None, None): dict(
        fidelity=90, positive={"horror": 10, "fairy_tale": 35}, frechet={"horror": 0.5, "fairy_tale": 0.6},
        two_sample={"horror": (0.55, [0.45, 0.65]), "fairy_tale": (0.5, [0.4, 0.6])}, overlap=None, training=None),
    ("smollm2-135m level 0", "smollm2-135m", 0): dict(
        fidelity=20, positive={"horror": 45, "fairy_tale": 30}, frechet={"horror": 1.3, "fairy_tale": 1.2},
        two_sample={"horror": (0.95, [0.9, 0.98]), "fairy_tale": (0.9, [0.83, 0.95])}, overlap=0.1,
        training={"val_loss": 3.67, "train_loss": None, "perplexity": 39.25, "fraction": 0.0, "epochs": 0}),
    ("smollm2-135m level 1", "smollm2-135m", 1): dict(
        fidelity=50, positive={"horror": 20, "fairy_tale": 32}, frechet={"horror": 1.0, "fairy_tale": 1.1},
        two_sample={"horror": (0.8, [0.71, 0.87]), "fairy_tale": (0.88, [0.8, 0.93])}, overlap=0.2,
        training={"val_loss": 3.60, "train_loss": 3.8, "perplexity": 36.6, "fraction": 0.3, "epochs": 1}),
    ("smollm2-135m level 2", "smollm2-135m", 2): dict(
        fidelity=80, positive={"horror": 12, "fairy_tale": 34}, frechet={"horror": 0.9, "fairy_tale": 1.0},
        two_sample={"horror": (0.7, [0.6, 0.78]), "fairy_tale": (0.86, [0.78, 0.91])}, overlap=0.3,
        training={"val_loss": 3.47, "train_loss": 3.5, "perplexity": 32.1, "fraction": 1.0, "epochs": 3}),
    ("gemma3-270m level 0", "gemma3-270m", 0): dict(
        fidelity=48, positive={"horror": 20, "fairy_tale": 25}, frechet={"horror": 1.5, "fairy_tale": 1.4}, two_sample=None,
        overlap=0.2, training={"val_loss": 3.2, "train_loss": None, "perplexity": 24.5, "fraction": 0.0, "epochs": 0}),
    ("gemma3-270m level 1", "gemma3-270m", 1): dict(
        fidelity=50, positive=None, frechet=None, two_sample=None, overlap=None,
        training={"val_loss": 3.1, "train_loss": 3.3, "perplexity": None, "fraction": 0.3, "epochs": 1}),
    ("gemma3-270m level 2", "gemma3-270m", 2): dict(
        fidelity=52, positive={"horror": 25, "fairy_tale": 20}, frechet={"horror": 1.2, "fairy_tale": 1.6}, two_sample=None,
        overlap=0.15, training={"val_loss": 3.0, "train_loss": 3.05, "perplexity": 20.1, "fraction": 1.0, "epochs": 3}),
}
ERRORS = {"sentiment": "cannot load the sentiment model <none>; set sentiment.model=minilm-polarity",
          "topics": "3 non-empty stories are fewer than the 5 topics asked for; lower topics.n or add stories",
          "closeness": "the dataset has no held-out horror passages"}
REFERENCE_TOPICS = [[f"ref{k}w{i}" for i in range(20)] for k in range(5)]


def by_genre(counts: dict[str, int]) -> dict:
    """Shares per genre and for all, as the evaluate stage writes them."""
    out = {"all": share(sum(counts.values()), PER_GENRE * len(counts))}
    out.update({g: share(c, PER_GENRE) for g, c in sorted(counts.items())})
    return out


def topics(overlap: float | None, seed: int) -> dict:
    """5 topics of 20 words; an aligned set shares round(overlap * 20) words with the reference topic it is aligned to."""
    if overlap is None:  # the training data: the reference itself
        found = [{"id": k, "words": words, "weights": [0.01] * 20, "coherence": 0.4} for k, words in enumerate(REFERENCE_TOPICS)]
        return {"n_topics": 5, "normalize": "lemma", "coherence": "c_v", "topics": found}
    shared = round(overlap * 20)
    found, aligned = [], []
    for k in range(5):
        ref = (k + seed) % 5  # topic k is aligned to reference topic ref
        found.append({"id": k, "words": REFERENCE_TOPICS[ref][:shared] + [f"s{seed}t{k}w{i}" for i in range(20 - shared)],
                      "weights": [0.01] * 20, "coherence": round(0.3 + 0.01 * k, 4)})
        aligned.append({"reference": ref, "topic": k, "overlap": overlap})
    return {"n_topics": 5, "normalize": "lemma", "coherence": "c_v", "topics": found, "aligned_to": aligned}


def lexicon(seed: int) -> dict:
    def words(label: str) -> list[dict]:
        return [{"word": f"{label[:3]}{seed}x{i}", "key": f"{label[:3]}{seed}x{i}", "count": 40 - i, "per_1000": round((40 - i) / 3, 3)}
                for i in range(32)]

    ranked = {"words": 3000, "positive": words("positive"), "negative": words("negative")}
    return {"mode": "lemma", "by_genre": {g: ranked for g in GENRES}, "all": ranked,
            "lexicon": {"positive": 2006, "negative": 4783, "source": "opinion_lexicon (Hu and Liu)"}}


def diversity(seed: int) -> dict:
    one = {"stories": PER_GENRE, "mean_words": 90.0 + seed, "empty_share": 0.0, "distinct_1": 0.4, "distinct_2": round(0.6 + 0.03 * seed, 4),
           "distinct_3": 0.85, "repeated_4gram_share": 0.02, "compression_ratio": 2.5, "self_bleu": 0.2}
    return {"all": {**one, "stories": 2 * PER_GENRE}, **{g: one for g in GENRES}}


def evaluation_set(name: str, model: str | None, level: int | None, seed: int, numbers: dict) -> dict:
    s: dict = {"name": name, "source": f"/runs/{name}", "notes": [], "errors": {}, "seconds": {},
               "kind": "training_data" if model is None else "stories", "model": model, "level": level,
               "format": None if model is None else "chat",
               "training": None if numbers["training"] is None else {"level": level, **numbers["training"]},
               "stories": {"all": 2 * PER_GENRE, "by_genre": {g: PER_GENRE for g in GENRES}}}
    fidelity = {"horror": numbers["fidelity"] // 2, "fairy_tale": numbers["fidelity"] - numbers["fidelity"] // 2}
    s["genre_fidelity"] = {g: {"as_asked": v, "predicted": {}} for g, v in by_genre(fidelity).items()}
    s["flags"] = {g: {"empty": share(0, v["n"]), "degenerate": share(seed % 3, v["n"])} for g, v in by_genre(fidelity).items()}
    s["diversity"] = diversity(seed)
    s["lexicon"] = lexicon(seed)
    s["copying"] = {g: {"n": 8, "mean_copied_share": 0.01 * seed, "max_copied_share": 0.2, "median_longest_run": 0, "max_longest_run": 8 + seed}
                    for g in ("all", *GENRES)}
    if numbers["positive"] is None:
        s["errors"].update(ERRORS)
        return s
    s["sentiment"] = {"backend": "transformers text-classification", "model": "minilm-polarity", "reads": "last 512 words",
                      "by_genre": {g: {"positive": v, "negative": share(v["n"] - v["count"], v["n"])} for g, v in by_genre(numbers["positive"]).items()}}
    vader = {g: min(PER_GENRE, c + 5) for g, c in numbers["positive"].items()}
    s["sentiment_vader"] = {"backend": "nltk vader", "model": "vader_lexicon", "reads": "last 512 words",
                            "by_genre": {g: {"positive": v} for g, v in by_genre(vader).items()}}
    s["topics"] = topics(numbers["overlap"], seed)
    s["closeness"] = {}
    for g in GENRES:
        s["closeness"][g] = {"frechet": numbers["frechet"][g], "stories": PER_GENRE, "passages": 100}
        if numbers["two_sample"]:
            accuracy, ci = numbers["two_sample"][g]
            s["closeness"][g]["two_sample"] = {"accuracy": accuracy, "ci95": ci, "n": 100}
    if numbers["two_sample"]:  # the whole set: both genres' pairs in one test, so a narrower interval
        mean = round(sum(a for a, _ in numbers["two_sample"].values()) / len(GENRES), 4)
        s["closeness"]["all"] = {"frechet": 1.0, "stories": 2 * PER_GENRE, "passages": 2 * PER_GENRE,
                                 "two_sample": {"accuracy": mean, "ci95": [round(mean - 0.05, 4), round(min(1.0, mean + 0.05), 4)], "n": 200}}
    return s


def stories(name: str, seed: int) -> list[dict]:
    records = [{"type": "header", "model": name, "versions": {}}]
    for i in range(6):
        genre = GENRES[i % 2]
        text = EVIL if (seed == 3 and i == 1) else f"Story {i} of {name}: once upon a time in the {genre} there was a tale number {i}."
        records.append({"id": i, "genre": genre, "prompt": f"Write me a {genre}", "text": text, "new_tokens": 20 + i,
                        "finish_reason": "eos" if i % 3 else "length", "flags": {"empty": False, "echo": i == 4}, "degenerate": i == 4})
    return records


def write_evaluation(folder: Path, s: dict, records: list[dict] | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    metrics = {"sets": [s], "config": {"seed": 42}, "genre_classifier": CLASSIFIER}
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    if records is not None:
        (folder / "stories.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return folder


def build(root: Path) -> list[Path]:
    """The training data's evaluation and each model's at levels 0, 1, 2, one folder each (order shuffled)."""
    folders = []
    for seed, ((name, model, level), numbers) in enumerate(SETS.items()):
        records = None if numbers["positive"] is None else stories(name, seed)
        folders.append(write_evaluation(root / f"evaluate-{seed}", evaluation_set(name, model, level, seed, numbers), records))
    return folders[::-1]  # the report orders the sets itself
