"""The evaluate stage's analyses on hand-written stories: golden counts, words and intervals."""

import pytest

from components.common.errors import TaletuneError
from components.evaluate.diversity import compression_ratio, distinct_n, diversity, repeated_ngram_share, self_bleu
from components.evaluate.intervals import share, wilson
from components.evaluate.lexicon import Matcher, load_lexicon, read_word_list, top_words
from components.evaluate.text import words

STORIES = [
    {"genre": "horror", "text": "The woman screamed. The dead woman rose from the grave, and the village died of fear."},
    {"genre": "horror", "text": "Fear, fear, fear: the dark house was cursed and the screams never stopped."},
    {"genre": "fairy_tale", "text": "The kind princess loved the frog, and they lived happily in a beautiful castle."},
    {"genre": "fairy_tale", "text": "A good fairy gave the poor girl a lovely gown; the wicked sisters were jealous."},
]


def test_words_without_punkt():
    assert words("Don't go -- the WOMAN’s 3 cats! Well-known.") == ["don't", "go", "the", "woman's", "cats", "well-known"]


def test_wilson_interval_golden():
    assert [round(x, 4) for x in wilson(45, 100)] == [0.3561, 0.5476]
    assert [round(x, 4) for x in wilson(0, 10)] == [0.0, 0.2775]
    assert share(10, 10) == {"count": 10, "n": 10, "share": 1.0, "ci95": [0.7225, 1.0]}
    assert wilson(0, 0) == (0.0, 1.0)


def test_diversity_golden():
    assert distinct_n([["a", "b", "a", "b"]], 1) == 0.5
    assert distinct_n([["a", "b", "a", "b"]], 2) == 0.6667
    assert repeated_ngram_share("a b c d a b c d".split(), 4) == 0.2  # 5 four-grams, 1 repeats the first
    assert repeated_ngram_share("a b c".split(), 4) == 0.0
    assert compression_ratio([]) == 0.0
    looping = diversity(["and then and then and then and then and then and then"] * 3)
    varied = diversity([s["text"] for s in STORIES])
    assert looping["repeated_4gram_share"] > 0.5 > varied["repeated_4gram_share"]
    assert looping["compression_ratio"] > varied["compression_ratio"]
    assert looping["self_bleu"] > varied["self_bleu"]
    assert varied["stories"] == 4 and varied["empty_share"] == 0.0 and varied["mean_words"] == 14.5


def test_self_bleu_is_seeded_and_needs_two_stories():
    lists = [words(s["text"]) for s in STORIES] * 5
    assert self_bleu(lists, sample=5, seed=1) == self_bleu(lists, sample=5, seed=1)
    assert self_bleu([["only", "one"]]) is None


def test_womanizer_matches_woman_only_when_stemming(nltk_data):
    positive, negative = load_lexicon()
    assert (len(positive), len(negative)) == (2006, 4783)
    lemma, stem = Matcher("lemma", positive, negative), Matcher("stem", positive, negative)
    assert lemma.match("woman") is None and lemma.match("women") is None
    assert lemma.match("womanizers") == ("womanizer", "negative")
    assert stem.match("woman") == ("woman", "negative"), "the reference study's artifact"
    assert lemma.match("died") == ("died", "negative") and lemma.match("screams") == ("scream", "negative")


def test_top_words_golden(nltk_data):
    result = top_words(STORIES, Matcher("lemma", *load_lexicon()), k=3)
    horror = result["by_genre"]["horror"]
    assert horror["words"] == 29
    assert horror["negative"][:3] == [
        {"word": "fear", "key": "fear", "count": 4, "per_1000": 137.931},
        {"word": "screamed", "key": "scream", "count": 2, "per_1000": 68.966},  # screamed, screams
        {"word": "cursed", "key": "cursed", "count": 1, "per_1000": 34.483},  # ties go by word
    ]
    assert horror["positive"] == []
    fairy = result["by_genre"]["fairy_tale"]
    assert [w["word"] for w in fairy["positive"]] == ["beautiful", "good", "happily"]
    assert [w["word"] for w in fairy["negative"]] == ["jealous", "poor", "wicked"]
    assert result["all"]["words"] == 58 and result["mode"] == "lemma"
    stemmed = top_words(STORIES, Matcher("stem", *load_lexicon()), k=30)
    assert {"word": "woman", "key": "woman", "count": 2, "per_1000": 68.966} in stemmed["by_genre"]["horror"]["negative"]


def test_user_word_lists(tmp_path, nltk_data):
    (tmp_path / "pos.txt").write_text("; Hu and Liu style header\n\nkind\nlovely\n")
    (tmp_path / "neg.txt").write_text("wicked\n")
    positive, negative = load_lexicon(str(tmp_path / "pos.txt"), str(tmp_path / "neg.txt"))
    assert positive == {"kind", "lovely"} and negative == {"wicked"}
    result = top_words(STORIES, Matcher("lemma", positive, negative))
    assert [w["word"] for w in result["all"]["positive"]] == ["kind", "lovely"]


def test_bad_lexicon_input(tmp_path):
    (tmp_path / "empty.txt").write_text("; only a comment\n\n")
    with pytest.raises(TaletuneError, match="lexicon file .*empty.txt has no words"):
        read_word_list(tmp_path / "empty.txt")
    with pytest.raises(TaletuneError, match="give both a positive and a negative word list"):
        load_lexicon(str(tmp_path / "empty.txt"), None)


def test_a_missing_nltk_resource_names_the_fix(monkeypatch, tmp_path):
    import nltk

    from components.evaluate.nltk_data import require

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    with pytest.raises(TaletuneError, match=r"NLTK resource 'vader_lexicon' is missing; install it with `python -m nltk.downloader vader_lexicon`"):
        require("vader_lexicon")


# ------------------------------------------------------------------ topics and the stage


def _story_file(path, stories, header=True):
    import json

    lines = [{"type": "header", "model": "tiny", "level": 1}] if header else []
    path.write_text("".join(json.dumps(r) + "\n" for r in [*lines, *stories]))
    return path


def many_stories(n=24):
    import random

    rng = random.Random(0)
    horror = "ghost grave blood night scream shadow fear dead house door candle crypt".split()
    fairy = "princess castle frog king queen fairy forest golden wish dragon prince ball".split()
    return [{"genre": g, "text": " ".join(rng.choice(pool) for _ in range(30))}
            for i in range(n) for g, pool in [("horror", horror), ("fairy_tale", fairy)]]


def test_lda_is_deterministic_and_finds_the_two_vocabularies(nltk_data):
    from components.evaluate.topics import align, topics

    texts = [s["text"] for s in many_stories()]
    first, again = topics(texts, n_topics=2, top_n=5), topics(texts, n_topics=2, top_n=5)
    assert first == again
    tops = [set(t["words"]) for t in first["topics"]]
    horror = set("ghost grave blood night scream shadow fear dead house door candle crypt".split())
    assert sorted(len(t & horror) for t in tops) == [0, 5], "one topic per vocabulary"
    assert all(-1 <= t["coherence"] <= 1 for t in first["topics"])
    swapped = {**first, "topics": first["topics"][::-1]}["topics"]
    assert [(p["reference"], p["topic"], p["overlap"]) for p in align(first["topics"], swapped)] == [(0, 1, 1.0), (1, 0, 1.0)]


def test_the_cli_evaluates_a_set_and_the_dataset(tmp_path, nltk_data):
    import json

    from tests.conftest import run_cli
    from tests.tiny import make_dataset

    stories = _story_file(tmp_path / "stories.jsonl", many_stories())
    data = make_dataset(tmp_path / "data")
    result = run_cli("components.evaluate", str(stories), str(data), "--out", str(tmp_path / "eval"), "--set", "topics.n=2",
                     env={"NLTK_DATA": str(nltk_data)})
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    first, training = metrics["sets"]
    assert first["name"] == "tiny level 1" and first["stories"] == {"all": 48, "by_genre": {"fairy_tale": 24, "horror": 24}}
    assert training["name"] == "training data" and training["stories"]["all"] == 48
    assert set(first) >= {"flags", "diversity", "lexicon", "topics"} and not first["errors"]
    assert first["flags"]["all"]["empty"]["share"] == 0.0
    assert {"scream", "fear", "dead"} <= {w["word"] for w in first["lexicon"]["by_genre"]["horror"]["negative"]}
    assert not first["lexicon"]["by_genre"]["fairy_tale"]["negative"]
    assert len(training["topics"]["aligned_to_first"]) == 2
    assert "| tiny level 1 | 48 |" in (tmp_path / "eval" / "report.md").read_text()
    assert (tmp_path / "eval" / "provenance.json").is_file()


def test_bad_sets_and_failing_analyses(tmp_path, nltk_data):
    from components.evaluate.config import EvaluateConfig
    from components.evaluate.stage import run_evaluate
    from components.evaluate.stories import read_set
    from tests.conftest import run_cli

    (tmp_path / "bad.jsonl").write_text('{"genre": "horror", "text": "x"}\nnot json\n')
    result = run_cli("components.evaluate", str(tmp_path / "bad.jsonl"), "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "bad.jsonl line 2 is not JSON" in result.stderr and "Traceback" not in result.stderr
    _, records, notes = read_set(_story_file(tmp_path / "nogenre.jsonl", [{"text": "a dark night"}, {"genre": "horror", "text": "b"}]))
    assert [r["genre"] for r in records] == ["unlabelled", "horror"] and "1 of 2 records have no genre" in notes[0]

    empty = run_evaluate([str(_story_file(tmp_path / "empty.jsonl", []))], EvaluateConfig(), tmp_path / "e")
    assert empty["sets"][0]["errors"] == {"all": f"{tmp_path / 'empty.jsonl'} has no stories; nothing to evaluate"}

    # Too few stories for the topics, and an empty lexicon file: both reported, the rest still runs.
    (tmp_path / "pos.txt").write_text("\n")
    few = _story_file(tmp_path / "few.jsonl", many_stories(1))
    config = EvaluateConfig(lexicon={"positive": str(tmp_path / "pos.txt"), "negative": str(tmp_path / "pos.txt")})
    metrics = run_evaluate([str(few)], config, tmp_path / "f")
    errors = metrics["sets"][0]["errors"]
    assert "fewer than the 5 topics" in errors["topics"] and "has no words" in errors["lexicon"]
    assert metrics["sets"][0]["diversity"]["all"]["stories"] == 2
    cli = run_cli("components.evaluate", str(few), "--out", str(tmp_path / "g"), env={"NLTK_DATA": str(nltk_data)})
    assert cli.returncode == 2 and "error: tiny level 1: topics: 2 non-empty stories are fewer than the 5 topics" in cli.stderr
    assert (tmp_path / "g" / "metrics.json").is_file()
