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

    from tests.tiny import make_dataset

    stories = _story_file(tmp_path / "stories.jsonl", many_stories())
    data = make_dataset(tmp_path / "data")
    from components.evaluate.__main__ import main

    main([str(stories), str(data), "--out", str(tmp_path / "eval"), "--set", "topics.n=2", "--set", "sentiment.model=null"])
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    first, training = metrics["sets"]
    assert first["name"] == "tiny level 1" and first["stories"] == {"all": 48, "by_genre": {"fairy_tale": 24, "horror": 24}}
    assert training["name"] == "training data" and training["stories"]["all"] == 48
    assert set(first) >= {"flags", "diversity", "lexicon", "topics"} and not first["errors"]
    assert first["flags"]["all"]["empty"]["share"] == 0.0
    assert {"scream", "fear", "dead"} <= {w["word"] for w in first["lexicon"]["by_genre"]["horror"]["negative"]}
    assert not first["lexicon"]["by_genre"]["fairy_tale"]["negative"]
    assert len(training["topics"]["aligned_to_first"]) == 2
    assert "| tiny level 1 | all | 48 |" in (tmp_path / "eval" / "report.md").read_text()
    assert (tmp_path / "eval" / "provenance.json").is_file()


def test_bad_sets_and_failing_analyses(tmp_path, nltk_data, capsys):
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
    from components.evaluate.__main__ import main

    with pytest.raises(SystemExit) as exit_:
        main([str(few), "--out", str(tmp_path / "g"), "--set", "sentiment.model=null"])
    assert exit_.value.code == 2
    assert "error: tiny level 1: topics: 2 non-empty stories are fewer than the 5 topics" in capsys.readouterr().err
    assert (tmp_path / "g" / "metrics.json").is_file()


# ------------------------------------------------------------------ sentiment, copying, closeness, fidelity


def test_ending_keeps_the_last_words():
    from components.evaluate.sentiment import ending

    text = "One, two; three four! " * 200 + "And they lived happily ever after."
    end = ending(text, n=6)
    assert end == "And they lived happily ever after."
    assert ending("short story.", n=6) == "short story."


def test_vader_reads_endings_per_genre(nltk_data):
    from components.evaluate.sentiment import tally, vader

    labels = vader(STORIES)
    assert labels == ["negative", "negative", "positive", "negative"]
    counts = tally(STORIES, labels)
    assert counts["horror"]["negative"]["count"] == 2 and counts["fairy_tale"]["positive"]["count"] == 1
    assert counts["all"]["positive"] == {"count": 1, "n": 4, "share": 0.25, "ci95": [0.0456, 0.6994]}


def test_copying_golden():
    from components.evaluate.copying import NgramIndex

    index = NgramIndex(["one two three four five six seven eight nine ten"], n=4)
    assert index.story("one two three four five six") == {"copied_share": 1.0, "longest_run": 6}
    assert index.story("zero one two three four x y z w") == {"copied_share": 1 / 6, "longest_run": 4}
    assert index.story("nothing here at all") == {"copied_share": 0.0, "longest_run": 0}
    assert index.summary(["one two three four", "a b c d"])["mean_copied_share"] == 0.5


def test_frechet_golden():
    import numpy as np

    from components.evaluate.closeness import frechet

    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 3))
    assert abs(frechet(a, a)) < 1e-6
    shifted = frechet(a, a + np.array([3.0, 0.0, 0.0]))
    assert abs(shifted - 9.0) < 1e-6, "a pure shift adds its squared length"


def tiny_sentiment_model(folder):
    """A random BERT classifier with MiniLM's tokenizer: fast, for the plumbing only."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from components.evaluate.embed import minilm_folder

    tok = AutoTokenizer.from_pretrained(minilm_folder())
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                        id2label={0: "NEGATIVE", 1: "POSITIVE"}, label2id={"NEGATIVE": 0, "POSITIVE": 1})
    BertForSequenceClassification(config).save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


def test_the_pipeline_path_with_a_tiny_classifier_and_the_dataset(tmp_path, nltk_data):
    import json

    from components.evaluate.config import EvaluateConfig
    from components.evaluate.stage import run_evaluate
    from tests.tiny import make_dataset

    data = make_dataset(tmp_path / "data")
    (tmp_path / "data" / "data" / "test.parquet").write_bytes((tmp_path / "data" / "data" / "validation.parquet").read_bytes())
    model = tiny_sentiment_model(tmp_path / "sentiment")
    stories = _story_file(tmp_path / "stories.jsonl", many_stories(6))
    config = EvaluateConfig(sentiment={"model": str(model)}, topics={"n": 2}, genre={"train_per_group": 10})
    metrics = run_evaluate([str(stories)], config, tmp_path / "eval", dataset=str(data))
    s = metrics["sets"][0]
    assert not s["errors"], s["errors"]
    counts = s["sentiment"]["by_genre"]["horror"]
    assert counts["positive"]["count"] + counts["negative"]["count"] == 6 and s["sentiment"]["model"] == str(model)
    assert s["genre_fidelity"]["all"]["as_asked"]["n"] == 12
    assert set(s["copying"]) == {"all", "fairy_tale", "horror"} and s["copying"]["all"]["n"] == 8
    assert s["closeness"]["horror"]["frechet"] > 0
    assert metrics["genre_classifier"]["n"] == 12 and metrics["genre_classifier"]["accuracy"] > 0.5
    from components.evaluate.sentiment import load_classifier

    assert load_classifier(str(model)).tokenizer.truncation_side == "left", "the classifier reads the ending"
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "| tiny level 1 | horror | 6 |" in report and "VADER" in report
    json.dumps(metrics)  # all plain JSON


def test_an_unreachable_sentiment_model_names_the_offline_path(tmp_path, nltk_data):
    from components.evaluate.config import EvaluateConfig
    from components.evaluate.stage import run_evaluate

    stories = _story_file(tmp_path / "stories.jsonl", many_stories(3))
    metrics = run_evaluate([str(stories)], EvaluateConfig(sentiment={"model": str(tmp_path / "no-model")}, topics={"n": 2}), tmp_path / "o")
    s = metrics["sets"][0]
    assert "python -m components.evaluate.sentiment_model --out DIR" in s["errors"]["sentiment"]
    assert "sentiment_vader" in s and "lexicon" in s, "the other analyses still ran"


@pytest.mark.slow  # about 8 minutes on 2 cores: one epoch over 9,596 sentences
def test_the_offline_sentiment_classifier_reaches_80_percent(tmp_path, nltk_data):
    from components.evaluate.sentiment import classify
    from components.evaluate.sentiment_model import train

    record = train(tmp_path / "model")
    assert record["held_out_accuracy"] >= 0.80, record
    labels = classify([{"text": "A wonderful, moving and beautiful film."}, {"text": "Dull, tedious and badly acted."}], str(tmp_path / "model"))
    assert labels == ["positive", "negative"]
