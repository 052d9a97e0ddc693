"""Findings computed from the numbers: sentences from templates, never written by hand.

    found = findings(load(["eval-0/", "eval-1/"]))
    print(found[0]["sentence"])

Two kinds:
- `most_positive`: per genre, the set with the most positive endings and whether
  its 95% interval overlaps the runner-up's;
- `training_effect`: per model, from its lowest to its highest level, whether more
  training moved its stories toward the training data: genre fidelity and the
  positive share (closer to the training data's), topics (a higher mean overlap with
  the training data's), lexicon words (a higher overlap of the top words with the
  training data's), closeness to the held-out books (a lower two-sample accuracy, or a
  lower Fréchet distance where there is no two-sample test; the whole set first), and
  the validation loss.
Overlapping Wilson intervals make a difference "within the intervals": it may be
chance. Measures without an interval say "no interval".
"""

from __future__ import annotations

from components.report.sets import MEASURES, Run, Set, Value, measure, missing, not_run, show, topic_overlap, word_overlap

WITHIN, OUTSIDE, NO_INTERVAL = "within the intervals", "outside the intervals", "no interval"
TOWARD = ("moved its stories toward the training data", "moved its stories away from the training data",
          "left its stories as far from the training data as before")
# Closeness is measured against books no model trained on, not against the training data.
TOWARD_BOOKS = ("moved its stories toward the held-out books", "moved its stories away from the held-out books",
                "left its stories as far from the held-out books as before")


def findings(run: Run) -> list[dict]:
    return most_positive(run) + [f for model in run.models for f in training_effects(run, model)]


def sentiment_key(run: Run) -> str:
    """The classifier's positive share where any set has it, else VADER's."""
    return "positive" if any(measure(s, "positive") for s in run.sets) else "vader_positive"


def intervals(a: Value, b: Value) -> str:
    if not (a.ci and b.ci):
        return NO_INTERVAL
    return WITHIN if a.ci[0] <= b.ci[1] and b.ci[0] <= a.ci[1] else OUTSIDE


def _point(s: Set, v: Value | None) -> dict:
    return {"set": s.label, "level": s.level, "value": v.value if v else None, "ci95": list(v.ci) if v and v.ci else None}


def most_positive(run: Run) -> list[dict]:
    key = sentiment_key(run)
    label = MEASURES[key].label
    by = "by the sentiment classifier" if key == "positive" else "by VADER"
    out = []
    for genre in run.genres:
        ranked = sorted(((s, measure(s, key, genre)) for s in run.sets), key=lambda p: -p[1].value if p[1] else 0)
        ranked = [(s, v) for s, v in ranked if v]
        entry = {"kind": "most_positive", "measure": key, "genre": genre, "top": None, "runner_up": None, "intervals": None}
        if not ranked:
            entry["sentence"] = f"{genre}: no set has {label}; the sentiment analysis was not computed."
        elif len(ranked) == 1:
            (s, v), = ranked
            entry.update(top=_point(s, v), sentence=f"{genre}: only {s.label} has {label}: {show(v, 'share')}.")
        else:
            (s, v), (r, w) = ranked[:2]
            verdict = intervals(v, w)
            lead = "ties with" if v.value == w.value else "has the most positive endings"
            tail = {WITHIN: "the intervals overlap, so the lead is within the intervals and may be chance",
                    OUTSIDE: "the intervals do not overlap", NO_INTERVAL: "no interval"}[verdict]
            head = f"{genre}: {s.label} {lead}" + ("" if v.value == w.value else f" {by}")
            entry.update(top=_point(s, v), runner_up=_point(r, w), intervals=verdict,
                         sentence=f"{head}, {show(v, 'share')}, ahead of {r.label} at {show(w, 'share')}; {tail}."
                         if v.value != w.value else f"{head} {r.label} at {show(v, 'share')}; {tail}.")
        out.append(entry)
    return out


def training_effects(run: Run, model: str) -> list[dict]:
    levels = run.of_model(model)
    if len(levels) < 2:
        only = ", ".join(f"level {s.level}" for s in levels) or "no level"
        return [{"kind": "training_effect", "model": model, "measure": None, "sentence":
                 f"{model}: only {only} was evaluated, so there is no effect of training to report."}]
    first, last = levels[0], levels[-1]
    ref = run.reference
    out = [_effect(model, first, last, "fidelity", "all", ref and measure(ref, "fidelity"))]
    key = sentiment_key(run)
    out += [_effect(model, first, last, key, g, ref and measure(ref, key, g), need_target=True) for g in run.genres]
    out.append(_effect(model, first, last, "topics", "all", None, values=(_topics(first), _topics(last))))
    words = tuple(word_overlap(s, ref) for s in (first, last))
    out.append(_effect(model, first, last, "words", "all", None, values=tuple(Value(w, None, None) if w is not None else None for w in words)))
    # Closeness of the whole set (every genre against its own held-out books) first: the study's headline.
    for g in [g for g in ["all", *run.genres] if g != "all" or measure(first, "two_sample", g) or measure(first, "frechet", g)]:
        both = all(measure(s, "two_sample", g) for s in (first, last))
        out.append(_effect(model, first, last, "two_sample" if both else "frechet", g, None, words=TOWARD_BOOKS))
    losses = tuple(_loss(s) for s in (first, last))
    out.append(_effect(model, first, last, "val_loss", "all", None, values=losses,
                       words=("lowered its validation loss", "raised its validation loss", "left its validation loss unchanged")))
    return out


def _topics(s: Set) -> Value | None:
    overlap = topic_overlap(s)
    return Value(overlap, None, None) if overlap is not None else None


def _why_not(s: Set, key: str) -> str:
    if key == "words":
        return not_run(s, "lexicon") if not isinstance(s.metrics.get("lexicon"), dict) else "the training data has no lexicon words to compare with"
    if key == "topics":
        found = s.metrics.get("topics")
        return "its topics were not aligned to the training data's" if isinstance(found, dict) else not_run(s, "topics")
    return "no validation loss in its training.json" if s.training else "its evaluation has no record from training.json"


def _loss(s: Set) -> Value | None:
    loss = (s.training or {}).get("val_loss")
    return Value(float(loss), None, None) if isinstance(loss, (int, float)) else None


NAMES = {"topics": ("topic overlap with the training data", "number", False),
         "words": ("overlap of the top lexicon words with the training data's", "number", False), "val_loss": ("validation loss", "number", True)}


def _effect(model: str, first: Set, last: Set, key: str, genre: str, target: Value | None, *, values=None,
            words=TOWARD, need_target: bool = False) -> dict:
    """One measure from the lowest level to the highest: direction against the target (or the
    measure's better side when there is none), and whether the intervals overlap."""
    name, style, lower = NAMES[key] if key in NAMES else (MEASURES[key].label, MEASURES[key].style, MEASURES[key].lower_is_closer)
    a, b = values or (measure(first, key, genre), measure(last, key, genre))
    where = f" for {genre}" if genre != "all" else ""
    entry = {"kind": "training_effect", "model": model, "measure": key, "genre": genre, "from": _point(first, a),
             "to": _point(last, b), "reference": target.value if target else None, "direction": None, "intervals": None}
    if a is None or b is None:
        s = first if a is None else last
        why = missing(s, key, genre) if key in MEASURES else _why_not(s, key)
        entry["sentence"] = f"{model}, {name}{where}: not computed at level {s.level} ({why})."
        return entry
    if need_target and target is None:
        entry["sentence"] = (f"{model}, {name}{where}: {show(a, style)} at level {first.level}, {show(b, style)} at level {last.level}; "
                             "the training data's was not computed, so closer or further cannot be said.")
        return entry
    if target is not None:
        before, after = abs(a.value - target.value), abs(b.value - target.value)
    else:
        before, after = (a.value, b.value) if lower else (-a.value, -b.value)
    direction = "toward" if after < before else "away" if after > before else "unchanged"
    verdict = intervals(a, b)
    tail = {WITHIN: "; the difference is within the intervals (they overlap), so it may be chance",
            OUTSIDE: "; the intervals do not overlap", NO_INTERVAL: " (no interval)"}[verdict]
    versus = f" (the training data: {show(target, style, ci=False)})" if target is not None else ""
    moved = words[{"toward": 0, "away": 1, "unchanged": 2}[direction]]
    entry.update(direction=direction, intervals=verdict, sentence=(
        f"{model}, {name}{where}: from level {first.level} to level {last.level}, {show(a, style)} → {show(b, style)}{versus}: "
        f"more training {moved}{tail}."))
    return entry
