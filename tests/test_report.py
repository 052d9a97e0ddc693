"""The report stage on synthetic evaluations: sections, names, golden findings, tolerance, escaping, CLI."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from components.report.config import ReportConfig
from components.report.page import SECTIONS
from components.report.sets import load
from components.report.stage import run_report
from tests import report_fixtures as fx

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One report over the fixture's seven sets, shared by the tests that only read it."""
    root = tmp_path_factory.mktemp("report")
    result = run_report(fx.build(root / "evaluations"), root / "out", ReportConfig())
    found = json.loads(Path(result["findings"]).read_text())["findings"]
    return result, Path(result["html"]).read_text(encoding="utf-8"), found


def finding(found: list[dict], **match) -> dict:
    hits = [f for f in found if all(f.get(k) == v for k, v in match.items())]
    assert len(hits) == 1, (match, hits)
    return hits[0]


def test_every_section_model_and_level_is_there(report):
    result, html, _ = report
    for key, title in SECTIONS:
        assert re.search(rf'<section id="{key}">\s*<h2>{re.escape(title)}</h2>', html), key
    for name in ("training data", "smollm2-135m level 0", "smollm2-135m level 1", "smollm2-135m level 2",
                 "gemma3-270m level 0", "gemma3-270m level 1", "gemma3-270m level 2"):
        assert name in html
    assert result["sets"] == 7 and result["levels"] == [0, 1, 2] and result["genres"] == ["fairy_tale", "horror"]
    assert sorted(result["models"]) == ["gemma3-270m", "smollm2-135m"]
    assert result["set_labels"][0] == "training data", "the training data leads, whatever the input order"
    assert "accuracy 88% (balanced over groups: 86%) on 120 passages of whole books it never saw (1952, 7074)" in html
    assert html.count('<figure class="chart"><svg') == 7  # 2 sentiment, fidelity, two-sample, Fréchet, distinct-2, losses


def test_findings_golden(report):
    _, _, found = report
    moved = finding(found, model="smollm2-135m", measure="fidelity")
    assert moved["sentence"] == ("smollm2-135m, genre as asked: from level 0 to level 2, 20% (13%–29%) → 80% (71%–87%) "
                                 "(the training data: 90%): more training moved its stories toward the training data; "
                                 "the intervals do not overlap.")
    assert (moved["direction"], moved["intervals"]) == ("toward", "outside the intervals")
    assert moved["from"] == {"set": "smollm2-135m level 0", "level": 0, "value": 0.2, "ci95": [0.1334, 0.2888]}
    within = finding(found, model="gemma3-270m", measure="fidelity")
    assert (within["direction"], within["intervals"]) == ("toward", "within the intervals")
    assert within["sentence"].endswith("the difference is within the intervals (they overlap), so it may be chance.")

    horror = finding(found, model="smollm2-135m", measure="positive", genre="horror")
    assert (horror["direction"], horror["intervals"], horror["reference"]) == ("toward", "outside the intervals", 0.2)
    assert finding(found, model="gemma3-270m", measure="positive", genre="horror")["direction"] == "away"
    topics = finding(found, model="smollm2-135m", measure="topics")
    assert (topics["direction"], topics["intervals"]) == ("toward", "no interval") and "0.100 → 0.300" in topics["sentence"]
    assert finding(found, model="gemma3-270m", measure="topics")["direction"] == "away"
    # Closeness: the two-sample test where both levels have it, else the Fréchet distance, lower being closer.
    whole = [f for f in found if f.get("model") == "smollm2-135m" and f.get("measure") in ("two_sample", "frechet")][0]
    assert (whole["genre"], whole["intervals"]) == ("all", "outside the intervals"), "the whole set's closeness comes first"
    assert "more training moved its stories toward the held-out books; the intervals do not overlap." in whole["sentence"]
    words = finding(found, model="smollm2-135m", measure="words")
    assert words["intervals"] == "no interval" and "overlap of the top lexicon words" in words["sentence"]
    assert finding(found, model="smollm2-135m", measure="two_sample", genre="horror")["intervals"] == "outside the intervals"
    assert finding(found, model="smollm2-135m", measure="two_sample", genre="fairy_tale")["intervals"] == "within the intervals"
    frechet = finding(found, model="gemma3-270m", measure="frechet", genre="fairy_tale")
    assert (frechet["direction"], frechet["intervals"]) == ("away", "no interval") and frechet["sentence"].endswith("(no interval).")
    loss = finding(found, model="smollm2-135m", measure="val_loss")
    assert loss["sentence"] == "smollm2-135m, validation loss: from level 0 to level 2, 3.67 → 3.47: more training lowered its validation loss (no interval)."

    top = finding(found, kind="most_positive", genre="horror")
    assert top["sentence"] == ("horror: smollm2-135m level 0 has the most positive endings by the sentiment classifier, 90% (79%–96%), "
                               "ahead of gemma3-270m level 2 at 50% (37%–63%); the intervals do not overlap.")
    fairy = finding(found, kind="most_positive", genre="fairy_tale")
    assert (fairy["top"]["set"], fairy["runner_up"]["set"], fairy["intervals"]) == ("training data", "smollm2-135m level 2", "within the intervals")


def test_a_set_with_errors_still_renders(report):
    _, html, _ = report
    measures = html[html.index('<section id="measures">'):html.index('<section id="lexicon">')]
    assert "<b>gemma3-270m level 1</b>, topics: 3 non-empty stories are fewer than the 5 topics asked for" in measures
    assert "cannot load the sentiment model &lt;none&gt;" in measures
    assert 'title="sentiment not computed: cannot load' in measures  # the n/c cell says why
    topics = html[html.index('<section id="topics">'):html.index('<section id="training">')]
    assert "topics not computed: 3 non-empty stories" in topics
    stories = html[html.index('<section id="stories">'):]
    assert "no stories.jsonl beside" in stories and "All 6 stories of gemma3-270m level 2" in stories


def test_story_text_is_escaped(report):
    _, html, _ = report
    assert "<script" not in html, "the page has no script, and a story's <script> must stay text"
    assert "It ended &lt;script&gt;alert(&#x27;boo&#x27;)&lt;/script&gt; &amp; &lt;/details&gt; &quot;here&quot;." in html


def test_nothing_is_fetched(report):
    _, html, _ = report
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert not re.search(r"""url\(\s*["']?(?!#)|@import|<link|<img|<iframe""", html, re.I)  # url(#clip) is the chart's own


def test_markdown_and_findings_json(report):
    result, _, found = report
    md = Path(result["markdown"]).read_text()
    assert "## Findings" in md and "## Headline numbers" in md and "## Not computed" in md
    assert all(f"- {f['sentence']}" in md for f in found)
    assert "| smollm2-135m level 0 | horror | 50 | 90% (79%–96%) | 20% (11%–33%) | 95% (90%–98%) | 1.30 | 0.630 | 1.0% |" in md
    data = json.loads(Path(result["findings"]).read_text())
    assert data["sets"] == 7 and len(data["findings"]) == result["findings_count"] == 19


def test_sparse_evaluations_render(tmp_path):
    """A set that has nothing but an error, a lone model level, and no training data: every section still renders."""
    empty = {"name": "empty level 0", "kind": "stories", "model": "empty", "level": 0, "errors": {"all": "x has no stories; nothing to evaluate"}}
    lone = fx.evaluation_set("smollm2-135m level 3", "smollm2-135m", 3, 2, fx.SETS[("smollm2-135m level 2", "smollm2-135m", 2)])
    folders = [fx.write_evaluation(tmp_path / "a", empty, []), fx.write_evaluation(tmp_path / "b", lone, None)]
    result = run_report(folders, tmp_path / "out", ReportConfig(samples_per_set=0, all_stories=False))
    html = Path(result["html"]).read_text()
    assert all(f'<section id="{key}">' in html for key, _ in SECTIONS)
    assert "nothing computed: x has no stories" in html and "<details><summary>All" not in html
    found = json.loads(Path(result["findings"]).read_text())["findings"]
    assert "smollm2-135m: only level 3 was evaluated, so there is no effect of training to report." in [f["sentence"] for f in found]
    assert "training data" not in result["set_labels"]


def test_identity_read_from_older_names(tmp_path):
    s = fx.evaluation_set("smollm2-135m level 3", "smollm2-135m", 3, 1, fx.SETS[("smollm2-135m level 1", "smollm2-135m", 1)])
    for key in ("kind", "model", "level", "training", "format"):
        del s[key]
    data = fx.evaluation_set("training data", None, None, 0, fx.SETS[("training data", None, None)])
    del data["kind"]
    run = load([fx.write_evaluation(tmp_path / "a", s, None), fx.write_evaluation(tmp_path / "b", data, None)])
    assert [(x.label, x.kind, x.model, x.level) for x in run.sets] == [
        ("training data", "training_data", None, None), ("smollm2-135m level 3", "stories", "smollm2-135m", 3)]


def test_cli_writes_the_report(tmp_path, capsys):
    from components.report.__main__ import main

    folders = fx.build(tmp_path / "evaluations")[:2]
    main([*map(str, folders), "--out", str(tmp_path / "out"), "--set", "samples_per_set=1"])
    assert f"report: {tmp_path / 'out' / 'report.html'}" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["{tmp}/nowhere", "--out", "{tmp}/out"], "does not exist"),
    (["{tmp}", "--out", "{tmp}/out"], "has no metrics.json"),
    (["{tmp}/bad", "--out", "{tmp}/out"], "is not valid JSON"),
    (["{tmp}/bad", "--out", "{tmp}/out", "--set", "samples=2"], "unknown key 'samples'"),
])
def test_cli_bad_input_is_one_line(tmp_path, args, message):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "metrics.json").write_text("{not json")
    done = subprocess.run([sys.executable, "-m", "components.report", *(a.format(tmp=tmp_path) for a in args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], done.stderr
    assert "Traceback" not in done.stderr
