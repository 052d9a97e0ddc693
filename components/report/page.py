"""The report as one self-contained HTML page: inline CSS and SVG, no script, nothing fetched.

    html = render(load(["eval-0/", "eval-1/"]), findings(run), ReportConfig())

Sections, each `<section id=...>` with an `<h2>`: overview, findings, sentiment,
measures, lexicon, topics, training, stories. Every section draws what the
evaluations hold and says what was not computed. Everything that comes from the
inputs (set names, words, error messages, story text) is HTML-escaped; long lists
collapse into `<details>`, which needs no script.
"""

from __future__ import annotations

import html
from itertools import zip_longest

from components.report.charts import Panel, by_level, losses
from components.report.config import ReportConfig
from components.report.findings import OUTSIDE, WITHIN, sentiment_key
from components.report.sets import MEASURES, Run, Set, measure, missing, not_run, number, topic_overlap

SECTIONS = [("overview", "Overview"), ("findings", "Findings"), ("sentiment", "Sentiment of the endings"),
            ("measures", "Measures"), ("lexicon", "Lexicon words"), ("topics", "Topics"),
            ("training", "Training"), ("stories", "Stories")]
# The measures table's columns, with short headings (the full labels are in the headings' titles).
TABLE = {"fidelity": "as asked", "positive": "positive (classifier)", "vader_positive": "positive (VADER)", "copied": "copied 8-grams",
         "longest_run": "longest copied run", "frechet": "Fréchet", "two_sample": "two-sample accuracy", "distinct_1": "distinct-1",
         "distinct_2": "distinct-2", "distinct_3": "distinct-3", "repeated_4gram": "repeated 4-grams", "self_bleu": "self-BLEU",
         "mean_words": "mean words", "empty": "empty", "degenerate": "degenerate"}

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1400px;padding:0 1.2em 3em;color:#222;line-height:1.45}
nav{position:sticky;top:0;background:#fff;border-bottom:1px solid #ddd;padding:.5em 0;z-index:1}
nav a{margin-right:1em;color:#1f5fa8;text-decoration:none}
h1{margin:.6em 0 .2em}h2{border-bottom:2px solid #1f5fa8;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}
th,td{border:1px solid #ddd;padding:.25em .45em;text-align:left;vertical-align:top}
th{background:#f3f5f8}td.num{text-align:right;white-space:nowrap}
.scroll{overflow-x:auto}.muted{color:#777}.ci{display:block;color:#777;font-size:.85em}
.missing{color:#b35c00}td.set{font-weight:600;min-width:7em}tr.first td{border-top:2px solid #bbb}
.badge{font-size:.8em;border-radius:3px;padding:0 .35em;margin-left:.3em;background:#eee;white-space:nowrap}
.badge.toward{background:#d6f0dc;color:#1a7f37}.badge.away{background:#f8d7d4;color:#b3261e}
.badge.outside{background:#dde7f5}.badge.within{background:#fff3cd}
table.compact{font-size:.78em}table.compact td,table.compact th{padding:.1em .35em}
figure.chart{margin:1em 0}figure.chart svg{max-width:100%;height:auto}figcaption{font-size:.85em;color:#555}
.cards{display:flex;gap:.8em;overflow-x:auto;padding-bottom:.5em}.card{flex:0 0 auto;border:1px solid #ddd;border-radius:4px;padding:.4em .6em}
.card h4{margin:.2em 0}.story{border-left:3px solid #1f5fa8;padding:.2em .8em;margin:.6em 0;background:#fafbfc}
.text{white-space:pre-wrap;font-family:Georgia,serif}.meta{font-size:.8em;color:#666}
details{margin:.4em 0}summary{cursor:pointer;font-weight:600}b.shared{color:#1f5fa8}
"""


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def render(run: Run, found: list[dict], config: ReportConfig) -> str:
    body = [overview(run, config), findings_section(found), sentiment(run), measures(run), lexicon(run, config),
            topics(run, config), training(run), stories(run, config)]
    nav = " ".join(f'<a href="#{key}">{esc(title)}</a>' for key, title in SECTIONS)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{esc(config.title)}</title>\n'
            f"<style>{CSS}</style>\n</head>\n<body>\n<h1>{esc(config.title)}</h1>\n<nav>{nav}</nav>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def section(key: str, body: str, intro: str = "") -> str:
    title = dict(SECTIONS)[key]
    return f'<section id="{key}">\n<h2>{esc(title)}</h2>\n' + (f"<p>{intro}</p>\n" if intro else "") + body + "\n</section>"


def chart(svg: str, caption: str) -> str:
    return f'<figure class="chart">{svg}<figcaption>{esc(caption)}</figcaption></figure>'


def cell(s: Set, key: str, genre: str) -> str:
    style = MEASURES[key].style
    v = measure(s, key, genre)
    if v is None and key == "two_sample" and measure(s, "frechet", genre):
        return '<td class="num muted" title="no two-sample test in this evaluation">–</td>'
    if v is None and genre == "all" and MEASURES[key].analysis == "closeness" and s.metrics.get("closeness"):
        return '<td class="num muted" title="this evaluation measured closeness per genre only">–</td>'
    if v is None:
        return f'<td class="num missing" title="{esc(missing(s, key, genre))}">n/c</td>'
    interval = f'<span class="ci">{number(v.ci[0], style)}–{number(v.ci[1], style)}</span>' if v.ci else ""
    return f'<td class="num">{number(v.value, style)}{interval}</td>'


def overview(run: Run, config: ReportConfig) -> str:
    stories = [s for s in run.sets if s.kind != "training_data"]
    levels = ", ".join(str(lv) for lv in run.levels) or "none"
    intro = (f"{len(run.sets)} sets: {'the training data and ' if run.reference else ''}{len(stories)} story sets from "
             f"{len(run.models)} model{'s' if len(run.models) != 1 else ''} ({esc(', '.join(run.models) or 'none')}) "
             f"at levels {esc(levels)}; genres: {esc(', '.join(run.genres) or 'none')}.")
    c = run.classifier or {}
    if c.get("accuracy") is not None:
        balanced = f" (balanced over groups: {c['balanced_accuracy']:.0%})" if c.get("balanced_accuracy") is not None else ""
        by_label = ", ".join(f"{esc(k)} {v:.0%}" for k, v in (c.get("by_label") or {}).items())
        books = (f"whole books it never saw ({esc(', '.join(c.get('test_books') or []))})" if c.get("unseen_books")
                 else "test passages of books it trained on")
        intro += (f" The genre classifier (which decides “as asked”) has accuracy {c['accuracy']:.0%}{balanced} on "
                  f"{esc(c.get('n', '?'))} passages of {books}" + (f"; by label: {by_label}." if by_label else "."))
    else:
        intro += " No genre classifier accuracy in these evaluations."
    rows = "".join(
        f"<tr><td>{esc(s.label)}</td><td>{esc(s.kind)}</td><td>{esc(s.model or '–')}</td><td>{esc('–' if s.level is None else s.level)}</td>"
        f"<td>{esc(s.format or '–')}</td><td class=num>{esc((s.metrics.get('stories') or {}).get('all', 0))}</td>"
        f"<td class=muted>{esc(s.folder)}</td><td class=missing>{esc(', '.join(sorted(s.errors)) or '')}</td></tr>"
        for s in run.sets)
    table = ("<div class=scroll><table><tr><th>set</th><th>kind</th><th>model</th><th>level</th><th>prompt format</th><th>stories</th>"
             f"<th>evaluation folder</th><th>not computed</th></tr>{rows}</table></div>")
    return section("overview", table, intro)


def findings_section(found: list[dict]) -> str:
    def item(f: dict) -> str:
        badges = {"toward": '<span class="badge toward">toward</span>', "away": '<span class="badge away">away</span>'}.get(
            f.get("direction"), "")
        badges += {WITHIN: '<span class="badge within">within the intervals</span>',
                   OUTSIDE: '<span class="badge outside">outside the intervals</span>'}.get(f.get("intervals"), "")
        return f"<li>{esc(f['sentence'])}{badges}</li>"

    positive = [f for f in found if f["kind"] == "most_positive"]
    parts = ["<h3>Most positive endings, by genre</h3><ul>" + "".join(map(item, positive)) + "</ul>" if positive else ""]
    for model in dict.fromkeys(f["model"] for f in found if f["kind"] == "training_effect"):
        mine = [f for f in found if f["kind"] == "training_effect" and f["model"] == model]
        parts.append(f"<h3>More training: {esc(model)}</h3><ul>" + "".join(map(item, mine)) + "</ul>")
    intro = ("Computed from the numbers below. Shares have Wilson 95% intervals: where the intervals of two values overlap, "
             "the difference is “within the intervals” and may be chance. Measures without an interval say so.")
    return section("findings", "\n".join(parts) or "<p>No findings: the evaluations hold no comparable numbers.</p>", intro)


def panels(run: Run, key: str, genres: list[str]) -> list[Panel]:
    """One panel per genre: each model's value at each level, and the training data's as the reference line."""
    out = []
    for genre in genres:
        series: dict = {}
        for model in run.models:
            points = [(s.level, v.value, v.ci) for s in run.of_model(model) if (v := measure(s, key, genre))]
            if points:
                series[model] = points
        ref = run.reference and measure(run.reference, key, genre)
        out.append(Panel("all genres" if genre == "all" else genre, series, ref.value if ref else None))
    return [p for p in out if p.series or p.reference is not None]


def level_chart(run: Run, key: str, genres: list[str], name: str, caption: str) -> str:
    chosen = panels(run, key, genres)
    if not any(p.series for p in chosen):
        return f'<p class="missing">No {esc(MEASURES[key].label)} to chart: {esc(_why_none(run, key))}</p>'
    svg = by_level(chosen, MEASURES[key].label, name, share=MEASURES[key].style == "share", models=run.models)
    return chart(svg, caption)


def _why_none(run: Run, key: str) -> str:
    reasons = dict.fromkeys(missing(s, key) for s in run.sets if s.kind != "training_data")
    return "; ".join(reasons) or "no story sets"


def sentiment(run: Run) -> str:
    key = sentiment_key(run)
    line = ", the dashed line is the training data" if run.reference else ""
    parts = [level_chart(run, key, run.genres, "positive-endings", f"{MEASURES[key].label} by genre: models side by side at "
                         f"each level, bars are 95% intervals{line}.")]
    if key == "positive" and any(measure(s, "vader_positive") for s in run.sets):
        parts.append(level_chart(run, "vader_positive", run.genres, "positive-endings-vader", "The same by VADER, as a second opinion."))
    model = next((s.metrics["sentiment"].get("model") for s in run.sets if isinstance(s.metrics.get("sentiment"), dict)), None)
    intro = (f"The share of stories whose ending (last 512 words) reads as positive, by {esc(model)}" if model else
             "The share of stories whose ending reads as positive (VADER only: the classifier was not run)") + "."
    return section("sentiment", "\n".join(parts), intro)


def measures(run: Run) -> str:
    head = "".join(f'<th title="{esc(MEASURES[k].label)}">{esc(short)}</th>' for k, short in TABLE.items())
    rows = []
    for s in run.sets:
        counts = (s.metrics.get("stories") or {})
        genres = ["all", *counts.get("by_genre", {})]
        for i, genre in enumerate(genres):
            n = counts.get("all") if genre == "all" else counts["by_genre"][genre]
            first = f'<td class="set" rowspan="{len(genres)}">{esc(s.label)}</td>' if i == 0 else ""
            rows.append(f'<tr{" class=first" if i == 0 else ""}>{first}<td>{esc(genre)}</td><td class=num>{esc(n)}</td>'
                        + "".join(cell(s, k, genre) for k in TABLE) + "</tr>")
        if not counts:
            rows.append(f'<tr class=first><td class="set">{esc(s.label)}</td><td colspan="{len(TABLE) + 2}" class="missing">'
                        f"nothing computed: {esc(s.errors.get('all', 'no stories'))}</td></tr>")
    table = f"<div class=scroll><table class=compact><tr><th>set</th><th>genre</th><th>stories</th>{head}</tr>{''.join(rows)}</table></div>"
    errors = [f"<li><b>{esc(s.label)}</b>, {esc(key)}: {esc(message)}</li>" for s in run.sets for key, message in s.errors.items()]
    errors_html = ("<h3>Not computed</h3><ul>" + "".join(errors) + "</ul>") if errors else "<p>No analysis failed.</p>"
    closeness = "two_sample" if any(measure(s, "two_sample", g) for s in run.sets for g in run.genres) else "frechet"
    charts = [
        level_chart(run, "fidelity", ["all", *run.genres], "genre-fidelity", "Genre fidelity: the share classified as the genre asked for."),
        level_chart(run, closeness, closeness_scopes(run, closeness), "closeness", "Closeness to held-out passages of the genre, cut to the "
                    "stories' lengths: " + (
            "how often a classifier tells the stories from the passages (50% = indistinguishable; lower is closer)."
            if closeness == "two_sample" else "the Fréchet distance of the embeddings (lower is closer; no interval).")),
        level_chart(run, "distinct_2", ["all", *run.genres], "distinct-2", "distinct-2: unique word pairs over all word pairs (no interval)."),
    ]
    if closeness == "two_sample" and any(measure(s, "frechet", g) for s in run.sets for g in run.genres):
        charts.insert(2, level_chart(run, "frechet", run.genres, "frechet", "The Fréchet distance of the embeddings (lower is closer; no interval)."))
    intro = ("Every set by genre. Shares carry their Wilson 95% interval underneath; “n/c” is not computed (hover for why). "
             "Closeness: Fréchet distance and the two-sample accuracy against held-out passages of the genre (lower is closer).")
    return section("measures", table + errors_html + "\n".join(charts), intro)


def closeness_scopes(run: Run, key: str) -> list[str]:
    """The genres, after "all" (the whole set against held-out books of each story's genre) where it was measured."""
    return (["all"] if any(measure(s, key, "all") for s in run.sets) else []) + run.genres


def lexicon(run: Run, config: ReportConfig) -> str:
    def card(s: Set, scope: str) -> str:
        lex = s.metrics.get("lexicon")
        if not isinstance(lex, dict):
            return f'<div class="card"><h4>{esc(s.label)}</h4><p class="missing">{esc(not_run(s, "lexicon"))}</p></div>'
        words = lex.get("all") if scope == "all" else (lex.get("by_genre") or {}).get(scope)
        if not words:
            return f'<div class="card"><h4>{esc(s.label)}</h4><p class="muted">no {esc(scope)} stories</p></div>'
        k = config.top_words
        rows = "".join(
            "<tr>" + "".join(f"<td>{esc(w['word'])}</td><td class=num>{w['per_1000']:.1f}</td>" if w else "<td></td><td></td>"
                             for w in pair) + "</tr>"
            for pair in zip_longest(words.get("positive", [])[:k], words.get("negative", [])[:k]))
        return (f'<div class="card"><h4>{esc(s.label)}</h4><table class="compact"><tr><th>positive</th><th>per 1,000</th><th>negative</th>'
                f"<th>per 1,000</th></tr>{rows}</table></div>")

    blocks = []
    for i, scope in enumerate(["all", *run.genres]):
        cards = "".join(card(s, scope) for s in run.sets)
        blocks.append(f"<details{' open' if i == 0 else ''}><summary>{esc('all genres' if scope == 'all' else scope)}</summary>"
                      f'<div class="cards">{cards}</div></details>')
    mode = next((s.metrics["lexicon"].get("mode") for s in run.sets if isinstance(s.metrics.get("lexicon"), dict)), None)
    intro = (f"The top {config.top_words} positive and negative words of the opinion lexicon per set, with their rate per "
             f"1,000 words{f' ({esc(mode)} matching)' if mode else ''}; sets side by side.")
    return section("lexicon", "\n".join(blocks), intro)


def topics(run: Run, config: ReportConfig) -> str:
    ref = run.reference
    ref_topics = {t["id"]: t for t in ((ref.metrics.get("topics") or {}).get("topics") or [])} if ref else {}
    columns, rows = [], set(ref_topics)
    for s in run.sets:
        found = s.metrics.get("topics")
        if not isinstance(found, dict):
            columns.append((s, None, not_run(s, "topics")))
            continue
        own = {t["id"]: t for t in found.get("topics") or []}
        aligned = found.get("aligned_to")
        if aligned:  # reference topic -> this set's topic aligned to it
            placed = {a["reference"]: (own.get(a["topic"]), a.get("overlap")) for a in aligned}
        else:  # the training data itself, or an evaluation that was not aligned
            placed = {k: (t, 1.0 if s is ref else None) for k, t in own.items()}
        rows |= set(placed)
        columns.append((s, placed, None))
    if not rows:
        reasons = "; ".join(f"{s.label}: {not_run(s, 'topics')}" for s in run.sets)
        return section("topics", f'<p class="missing">No topics: {esc(reasons)}</p>')
    head = "".join(f"<th>{esc(s.label)}" + (f'<span class="ci">mean overlap {topic_overlap(s):.2f}</span>' if topic_overlap(s) is not None else "")
                   + "</th>" for s, _, _ in columns)
    body = []
    for r in sorted(rows):
        shared = set(ref_topics.get(r, {}).get("words", []))
        cells = []
        for s, placed, why in columns:
            if placed is None:
                cells.append(f'<td class="missing">{esc(why)}</td>')
                continue
            topic, overlap = placed.get(r, (None, None))
            if not topic:
                cells.append("<td></td>")
                continue
            words = ", ".join(f'<b class="shared">{esc(w)}</b>' if w in shared and s is not ref else esc(w)
                              for w in topic["words"][: config.topic_words])
            facts = [f"topic {topic['id']}"] + ([f"overlap {overlap:.2f}"] if overlap is not None and s is not ref else []) + (
                [f"c_v {topic['coherence']}"] if topic.get("coherence") is not None else [])
            cells.append(f'<td><span class="meta">{esc(", ".join(facts))}</span><br>{words}</td>')
        body.append(f"<tr><th>{'training data topic ' if ref_topics else 'topic '}{r}</th>{''.join(cells)}</tr>")
    intro = f"LDA topics, {config.topic_words} words each, per set. " + (
        "Each row is one of the training data's topics; each set's topic in that row is the one aligned to it (one to one, "
        "by the overlap of their top words). Words the aligned topic shares with the training data's are in bold."
        if ref_topics else "The training data is not among these evaluations, so the topics are not aligned: a row holds each set's topic of that number.")
    return section("topics", f"<div class=scroll><table><tr><th></th>{head}</tr>{''.join(body)}</table></div>", intro)


def training(run: Run) -> str:
    records = [s for s in run.sets if s.training]
    if not records:
        return section("training", '<p class="missing">No training records (training.json) in these evaluations.</p>')

    def num(value, digits=4) -> str:
        return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "–"

    rows = "".join(
        f"<tr><td>{esc(s.model)}</td><td class=num>{esc(s.level)}</td><td class=num>{num(s.training.get('fraction'), 2)}</td>"
        f"<td class=num>{num(s.training.get('epochs'), 0)}</td><td class=num>{num(s.training.get('train_loss'))}</td>"
        f"<td class=num>{num(s.training.get('val_loss'))}</td><td class=num>{num(s.training.get('perplexity'), 2)}</td></tr>"
        for s in records)
    table = ("<table><tr><th>model</th><th>level</th><th>fraction of the data</th><th>epochs</th><th>train loss</th>"
             f"<th>validation loss</th><th>perplexity</th></tr>{rows}</table>")
    series = {m: [(s.level, s.training.get("train_loss"), s.training.get("val_loss")) for s in run.of_model(m) if s.training]
              for m in run.models}
    svg = losses({m: p for m, p in series.items() if p}, "losses")
    intro = "Each level's record from its adapter's training.json. Level 0 is the untrained model: it has a validation loss but no train loss."
    return section("training", table + chart(svg, "Train loss (solid) and validation loss (dashed) by level, one colour per model."), intro)


def stories(run: Run, config: ReportConfig) -> str:
    parts = []
    for s in run.sets:
        notes = "".join(f'<p class="missing">{esc(n)}</p>' for n in s.notes)
        shown = samples(s.stories, config.samples_per_set)
        sample_html = "".join(story(r, "article") for r in shown)
        every = ""
        if config.all_stories and s.stories:
            items = "".join(story(r, "li") for r in s.stories)
            every = f"<details><summary>All {len(s.stories)} stories of {esc(s.label)}</summary><ol>{items}</ol></details>"
        parts.append(f"<h3>{esc(s.label)}</h3>{notes}{sample_html}{every}")
    intro = f"Per set, {config.samples_per_set} sample{'s' if config.samples_per_set != 1 else ''} (taken across genres)" + (
        ", and every story in a collapsed list." if config.all_stories else ".")
    return section("stories", "\n".join(parts), intro)


def samples(records: list[dict], k: int) -> list[dict]:
    """The first k stories taking genres in turn, so every genre shows."""
    by_genre: dict[str, list[dict]] = {}
    for r in records:
        by_genre.setdefault(str(r.get("genre")), []).append(r)
    turns = [r for group in zip_longest(*by_genre.values()) for r in group if r is not None]
    return turns[:k]


def story(r: dict, tag: str) -> str:
    flags = r.get("flags") or {}
    marks = [k for k, v in flags.items() if v] if isinstance(flags, dict) else []
    if r.get("degenerate") and "degenerate" not in marks:
        marks.append("degenerate")
    meta = [str(r.get("genre", "?")), f"id {r.get('id', '?')}"]
    meta += [f"{r['new_tokens']} new tokens"] if r.get("new_tokens") is not None else []
    meta += [f"ended by {r['finish_reason']}"] if r.get("finish_reason") else []
    meta += [f"flagged: {', '.join(marks)}"] if marks else []
    text = str(r.get("text", ""))
    body = esc(text) if text.strip() else '<span class="muted">(empty)</span>'
    css = ' class="story"' if tag == "article" else ""
    return f'<{tag}{css}><div class="meta">{esc(" · ".join(meta))}</div><div class="text">{body}</div></{tag}>'
