"""The evaluations to report on, read into sets that know who made them, and their measures.

    run = load(["runs/.../evaluate/evaluation", "runs/.../evaluate-5/evaluation"])
    measure(run.sets[1], "fidelity", "horror")   # Value(value=0.8, ci=(0.67, 0.89), n=50)

Each folder is one evaluate task's output: `metrics.json` (its sets, as
`components.evaluate.stage` writes them) and, beside it, `stories.jsonl` (what it
measured). A set names its maker in `kind`, `model`, `level`, `training` and
`format`; an older evaluation without them has them read from its name
("smollm2-135m level 3"). Any analysis may be missing: `missing()` says why.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from components.common.errors import TaletuneError

TRAINING_DATA = "training_data"


class Value(NamedTuple):
    value: float
    ci: tuple[float, float] | None  # 95% interval, where the evaluation has one
    n: int | None


@dataclass(frozen=True)
class Measure:
    label: str
    analysis: str  # the key in a set's metrics (and in its `errors` when it failed)
    path: tuple[str, ...]  # below the analysis; "{genre}" is filled in
    style: str = "number"  # "share" (shown as %), "number" or "count"
    lower_is_closer: bool = False


MEASURES = {
    "fidelity": Measure("genre as asked", "genre_fidelity", ("{genre}", "as_asked"), "share"),
    "positive": Measure("positive endings (classifier)", "sentiment", ("by_genre", "{genre}", "positive"), "share"),
    "vader_positive": Measure("positive endings (VADER)", "sentiment_vader", ("by_genre", "{genre}", "positive"), "share"),
    "copied": Measure("copied 8-gram share (mean)", "copying", ("{genre}", "mean_copied_share"), "share"),
    "longest_run": Measure("longest copied run (words)", "copying", ("{genre}", "max_longest_run"), "count"),
    "two_sample": Measure("two-sample accuracy", "closeness", ("{genre}", "two_sample"), "share", lower_is_closer=True),
    "frechet": Measure("Fréchet distance", "closeness", ("{genre}", "frechet"), lower_is_closer=True),
    "distinct_1": Measure("distinct-1", "diversity", ("{genre}", "distinct_1")),
    "distinct_2": Measure("distinct-2", "diversity", ("{genre}", "distinct_2")),
    "distinct_3": Measure("distinct-3", "diversity", ("{genre}", "distinct_3")),
    "repeated_4gram": Measure("repeated 4-grams", "diversity", ("{genre}", "repeated_4gram_share"), "share"),
    "self_bleu": Measure("self-BLEU", "diversity", ("{genre}", "self_bleu")),
    "mean_words": Measure("mean length (words)", "diversity", ("{genre}", "mean_words")),
    "empty": Measure("empty", "flags", ("{genre}", "empty"), "share"),
    "degenerate": Measure("degenerate", "flags", ("{genre}", "degenerate"), "share"),
}


@dataclass
class Set:
    label: str
    kind: str  # "training_data" or "stories"
    model: str | None
    level: int | None
    format: str | None
    training: dict | None
    metrics: dict
    folder: Path
    stories: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # about reading it, not about its stories

    @property
    def errors(self) -> dict:
        return self.metrics.get("errors") or {}


@dataclass
class Run:
    sets: list[Set]
    classifier: dict | None  # the genre classifier's report, from the first evaluation that has one

    @property
    def reference(self) -> Set | None:
        """The training data's set: what the stories are compared with."""
        return next((s for s in self.sets if s.kind == TRAINING_DATA), None)

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(s.model for s in self.sets if s.model))

    @property
    def levels(self) -> list[int]:
        return sorted({s.level for s in self.sets if s.level is not None})

    @property
    def genres(self) -> list[str]:
        found = {g for s in self.sets for g in (s.metrics.get("stories") or {}).get("by_genre", {})}
        return sorted(found)

    def of_model(self, model: str) -> list[Set]:
        return sorted((s for s in self.sets if s.model == model and s.level is not None), key=lambda s: s.level)


def load(evaluations: list[str | Path]) -> Run:
    if not evaluations:
        raise TaletuneError("no evaluations given; pass the evaluate tasks' output folders (each holds metrics.json)")
    sets, classifier = [], None
    for source in evaluations:
        folder, metrics = _read_metrics(Path(source))
        classifier = classifier or metrics.get("genre_classifier")
        stories, note = _read_stories(folder)
        raw = metrics["sets"]
        for s in raw:
            if not isinstance(s, dict):
                raise TaletuneError(f"{folder / 'metrics.json'} has a set that is not a JSON object; rerun the evaluate stage for it")
            # One evaluate task measures one set; a folder of several can only match records that name theirs.
            mine = stories if len(raw) == 1 else [r for r in stories if r.get("set") == s.get("name")]
            notes = [note] if note else []
            if stories and not mine:
                notes.append(f"{folder / 'stories.jsonl'} holds the stories of {len(raw)} sets without saying whose; not shown")
            sets.append(_identify(s, folder, mine, notes))
    if not sets:
        raise TaletuneError("the evaluations hold no sets; pass the evaluate tasks' output folders")
    order = list(dict.fromkeys(s.model for s in sets if s.model))
    sets.sort(key=lambda s: (s.kind != TRAINING_DATA, order.index(s.model) if s.model in order else len(order),
                             s.level if s.level is not None else -1, s.format or ""))
    _name(sets)
    return Run(sets, classifier)


def _read_metrics(path: Path) -> tuple[Path, dict]:
    folder = path.parent if path.name == "metrics.json" else path
    file = folder / "metrics.json"
    if not folder.is_dir():
        raise TaletuneError(f"{path} does not exist; pass the evaluate tasks' output folders (each holds metrics.json)")
    if not file.is_file():
        raise TaletuneError(f"{folder} has no metrics.json; pass an evaluate task's output folder (python -m components.evaluate ... --out DIR)")
    try:
        metrics = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TaletuneError(f"{file} is not valid JSON ({exc}); rerun the evaluate stage for it") from None
    if not isinstance(metrics, dict) or not isinstance(metrics.get("sets"), list):
        raise TaletuneError(f"{file} has no list of `sets`; it must be the evaluate stage's metrics.json")
    return folder, metrics


def _read_stories(folder: Path) -> tuple[list[dict], str | None]:
    """The stories beside metrics.json; a missing or broken file costs only the stories section."""
    from components.evaluate.stories import read_set

    if not (folder / "stories.jsonl").is_file():
        return [], f"no stories.jsonl beside {folder / 'metrics.json'}; no stories to show"
    try:
        return read_set(folder / "stories.jsonl")[1], None
    except TaletuneError as exc:
        return [], f"stories not shown: {exc}"


def _identify(s: dict, folder: Path, stories: list[dict], notes: list[str]) -> Set:
    name = str(s.get("name") or folder.name)
    kind, model, level = s.get("kind"), s.get("model"), s.get("level")
    if kind is None:  # an evaluation from before the identity fields: read them from the name
        kind = TRAINING_DATA if name == "training data" else "stories"
        found = re.fullmatch(r"(.+) level (\d+)", name)
        if found and kind == "stories":
            model, level = found[1], int(found[2])
    training = s.get("training") if isinstance(s.get("training"), dict) else None
    return Set(name, kind, model, level, s.get("format"), training, s, folder, stories, notes)


def _name(sets: list[Set]) -> None:
    """Labels a reader can tell apart: `model level N`, with the prompt format when formats differ."""
    formats = {s.format for s in sets if s.kind != TRAINING_DATA}
    seen: dict[str, int] = {}
    for s in sets:
        if s.kind == TRAINING_DATA:
            label = "training data"
        elif s.model and s.level is not None:
            label = f"{s.model} level {s.level}" + (f" ({s.format})" if len(formats) > 1 and s.format else "")
        else:
            label = s.label
        seen[label] = seen.get(label, 0) + 1
        s.label = label if seen[label] == 1 else f"{label} #{seen[label]}"


def measure(s: Set, key: str, genre: str = "all") -> Value | None:
    """One measure of a set for a genre ("all": every genre), or None when it was not computed."""
    m = MEASURES[key]
    node = s.metrics.get(m.analysis)
    for part in m.path:
        node = node.get(part.format(genre=genre)) if isinstance(node, dict) else None
    if isinstance(node, dict):
        number = node.get("share", node.get("accuracy"))
        ci = node.get("ci95")
        if not isinstance(number, (int, float)):
            return None
        return Value(float(number), tuple(ci) if isinstance(ci, (list, tuple)) and len(ci) == 2 else None, node.get("n"))
    if isinstance(node, (int, float)) and not isinstance(node, bool):
        return Value(float(node), None, None)
    return None


def missing(s: Set, key: str, genre: str = "all") -> str:
    """Why a measure is absent: the analysis's error, the genre's error, or that it was not run."""
    m = MEASURES[key]
    entry = (s.metrics.get(m.analysis) or {}).get(genre)
    if isinstance(entry, dict) and entry.get("error"):
        return str(entry["error"])
    if m.analysis in s.metrics:
        return f"{m.label} was not computed for {genre}"
    return not_run(s, m.analysis)


def not_run(s: Set, analysis: str) -> str:
    """Why a whole analysis is absent from a set."""
    if analysis in s.errors:
        return f"{analysis} not computed: {s.errors[analysis]}"
    if "all" in s.errors:
        return str(s.errors["all"])
    return f"{analysis} was not run for this set"


def topic_overlap(s: Set) -> float | None:
    """Mean word overlap (Jaccard) of a set's topics with the training data's, as aligned by the evaluation."""
    pairs = (s.metrics.get("topics") or {}).get("aligned_to") or []
    overlaps = [p["overlap"] for p in pairs if isinstance(p.get("overlap"), (int, float))]
    return round(sum(overlaps) / len(overlaps), 4) if overlaps else None


def word_overlap(s: Set, reference: Set | None, k: int = 20) -> float | None:
    """Jaccard overlap of a set's top-k positive and negative lexicon words with the training data's."""
    def top(x: Set | None) -> set[str] | None:
        words = ((x.metrics.get("lexicon") or {}).get("all") or {}) if x else {}
        found = {f"{side}:{w['word']}" for side in ("positive", "negative") for w in (words.get(side) or [])[:k]}
        return found or None

    a, b = top(s), top(reference)
    return round(len(a & b) / len(a | b), 4) if a and b else None


def number(x: float, style: str = "number") -> str:
    """A number as the page writes it: shares in %, small ones with a decimal."""
    if style == "share":
        return f"{100 * x:.0f}%" if x == 0 or abs(x) >= 0.1 else f"{100 * x:.1f}%"
    if style == "count" or abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:#.3g}"  # three significant digits, trailing zeros kept: 3.00, 0.600


def show(v: Value | None, style: str = "number", ci: bool = True) -> str:
    """A value with its interval when there is one: `62% (52%–71%)`."""
    if v is None:
        return "–"
    return number(v.value, style) + (f" ({number(v.ci[0], style)}–{number(v.ci[1], style)})" if ci and v.ci else "")
