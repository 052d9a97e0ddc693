"""Report on a run's evaluations: one self-contained HTML page, a Markdown summary, the findings as data.

    python -m components.report runs/.../evaluate/evaluation runs/.../evaluate-5/evaluation --out report/

Each input is one evaluate task's output folder (`metrics.json`, and `stories.jsonl`
beside it). Outputs in `out_dir`:
- `report.html`: every section (overview, findings, sentiment, measures, lexicon,
  topics, training, stories) on one page that fetches nothing when opened;
- `report.md`: the findings and the headline table, for the Kubeflow dashboard;
- `findings.json`: the findings, each with its numbers and its sentence.
"""

from __future__ import annotations

import json
from pathlib import Path

from components.common import storage
from components.report.config import ReportConfig
from components.report.findings import findings, sentiment_key
from components.report.sets import MEASURES, Run, measure, show

HEADLINE = ["positive", "fidelity", "two_sample", "frechet", "distinct_2", "copied", "degenerate"]


def run_report(evaluations: list[str | Path], out_dir: str | Path, config: ReportConfig) -> dict:
    """Read the evaluations, write report.html, report.md and findings.json; returns a summary."""
    from components.report.page import render
    from components.report.sets import load

    run = load(evaluations)
    found = findings(run)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"html": out / "report.html", "markdown": out / "report.md", "findings": out / "findings.json"}
    summary = {"sets": len(run.sets), "set_labels": [s.label for s in run.sets], "models": run.models, "levels": run.levels,
               "genres": run.genres}
    storage.write_text(str(paths["html"]), render(run, found, config))
    storage.write_text(str(paths["markdown"]), markdown(run, found, config))
    storage.write_text(str(paths["findings"]), json.dumps({**summary, "findings": found}, indent=2, ensure_ascii=False) + "\n")
    return {**{k: str(p) for k, p in paths.items()}, **summary, "findings_count": len(found)}


def markdown(run: Run, found: list[dict], config: ReportConfig) -> str:
    """The findings and the headline numbers of every set and genre (the dashboard renders Markdown)."""
    def cellify(text) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = [f"# {cellify(config.title)}", "",
             f"{len(run.sets)} sets; models: {', '.join(run.models) or 'none'}; levels: {', '.join(map(str, run.levels)) or 'none'}. "
             "Shares with Wilson 95% intervals. Every chart, table and story: `report.html`.", "", "## Findings", ""]
    lines += [f"- {f['sentence']}" for f in found] or ["- none: the evaluations hold no comparable numbers"]
    headline = [sentiment_key(run) if k == "positive" else k for k in HEADLINE]
    lines += ["", "## Headline numbers", "",
              "| set | genre | stories | " + " | ".join(MEASURES[k].label for k in headline) + " |",
              "|---|---|---|" + "---|" * len(headline)]
    for s in run.sets:
        counts = s.metrics.get("stories") or {}
        for genre in ["all", *counts.get("by_genre", {})]:
            n = counts.get("all") if genre == "all" else counts["by_genre"][genre]
            values = [show(measure(s, k, genre), MEASURES[k].style) for k in headline]
            lines.append(f"| {cellify(s.label)} | {cellify(genre)} | {n} | " + " | ".join(values) + " |")
    problems = [f"- {cellify(s.label)}, {key}: {cellify(message)}" for s in run.sets for key, message in s.errors.items()]
    if problems:
        lines += ["", "## Not computed", "", *problems]
    return "\n".join(lines) + "\n"
