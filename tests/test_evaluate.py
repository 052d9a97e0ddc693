"""The evaluate stage's analyses on hand-written stories: golden counts, words and intervals."""

import json
from pathlib import Path

import pytest

from components.common.errors import TaletuneError
from components.evaluate.diversity import compression_ratio, distinct_n, diversity, repeated_ngram_share, self_bleu
from components.evaluate.intervals import share, wilson
from components.evaluate.lexicon import Matcher, load_lexicon, read_word_list, top_words
from components.evaluate.text import words
from tests.tiny import make_sentiment_model

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


def test_self_bleu_golden():
    """Worked by hand: BLEU-4 of each story against the others, nltk's smoothing method 1
    (a precision with no match becomes 0.1 over the hypothesis's n-gram count), then the mean.

    s1 against {s2, s3}: clipped matches 4/6 ("the" twice in s1, once in s2; "mat" nowhere), 3/5, 2/4, 1/3;
        the closest reference length (6) is not above 6, so no brevity penalty: (1/15)^(1/4) = 0.50813
    s2 against {s1, s3}: 5/6 ("a" from s3, not "hat"), 3/5, 2/4, 1/3: (1/12)^(1/4) = 0.53728
    s3 against {s1, s2}: 1/3 ("a"), then 0.1/2, 0.1/1, and 0.1/1 for 4-grams (s3 has none; nltk
        counts the denominator as 1); brevity penalty exp(1 - 6/3): e^-1 * (1/3 * 0.05 * 0.1 * 0.1)^(1/4) = 0.04180
    mean of the three: 0.36241
    Pairs: {s1, s2}: s1 against s2 as above (0.50813), s2 against s1 the same (4/6: "a", "hat" unmatched) -> 0.5081.
        {s1, s3}: no word in common, 0 both ways -> 0.0.
        {s2, s3}: s2 against s3: 1/6, 0.1/5, 0.1/4, 0.1/3, no penalty (6 > 3) = 0.04082; s3 against s2: 0.04180 -> 0.0413.
    Each figure cross-checked with nltk's sentence_bleu directly.
    """
    s1, s2, s3 = "the cat sat on the mat".split(), "the cat sat on a hat".split(), "a dog ran".split()
    for seed in (0, 1, 2):  # a sample as large as the set takes every story; the seed only reorders them
        assert self_bleu([s1, s2, s3], seed=seed) == 0.3624
    assert self_bleu([s1, s2]) == 0.5081
    assert self_bleu([s2, s3]) == 0.0413
    assert self_bleu([s1, [], s3]) == 0.0  # empty stories are left out
    assert self_bleu([s1, s1]) == 1.0
    assert self_bleu([s1]) is None and self_bleu([s1, []]) is None
    # More stories than the sample: the seed picks which two, and each pick scores as its pair.
    picks = {seed: self_bleu([s1, s2, s3], sample=2, seed=seed) for seed in range(12)}
    assert set(picks.values()) == {0.5081, 0.0, 0.0413}
    assert all(self_bleu([s1, s2, s3], sample=2, seed=seed) == value for seed, value in picks.items())


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
    with pytest.raises(TaletuneError, match=r"NLTK resource 'vader_lexicon' is missing; install with `python -m nltk.downloader vader_lexicon`"):
        require("vader_lexicon")
    with pytest.raises(TaletuneError, match=r"resources 'wordnet', 'stopwords' are missing; install with `python -m nltk.downloader wordnet stopwords`"):
        require("wordnet", "stopwords")


def test_a_run_checks_its_nltk_data_before_it_starts(tmp_path, mirror):
    from tests.conftest import run_cli

    result = run_cli("pipelines", "run", "--config", "demo", env={"NLTK_DATA": str(tmp_path), "TALETUNE_RUNS": str(tmp_path / "runs"),
                                                                   "TALETUNE_GUTENBERG_MIRROR": str(mirror)})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "install with `python -m nltk.downloader stopwords wordnet opinion_lexicon vader_lexicon sentence_polarity movie_reviews`" in result.stderr
    assert not (tmp_path / "runs").exists(), "nothing ran"


# ------------------------------------------------------------------ topics and the stage


def _story_file(path, stories, header=True):

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
    assert len(training["topics"]["aligned_to"]) == 2
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


def _dataset_with_test_split(folder):
    from tests.tiny import make_dataset

    data = make_dataset(folder)
    (data / "data" / "test.parquet").write_bytes((data / "data" / "validation.parquet").read_bytes())
    return data


def test_the_pipeline_path_with_a_tiny_classifier_and_the_dataset(tmp_path, nltk_data):

    from components.evaluate.config import EvaluateConfig
    from components.evaluate.stage import headline, run_evaluate

    data = _dataset_with_test_split(tmp_path / "data")
    model = make_sentiment_model(tmp_path / "sentiment")
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
    assert s["sentiment"]["reads"] == "last 512 words (the last 512 tokens of them)", "a model without a training record reads one window"
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "| tiny level 1 | horror | 6 |" in report and "VADER" in report and "Genre classifier" in report
    numbers = headline(s)
    assert numbers["stories"] == 12 and numbers["genre_as_asked"] == s["genre_fidelity"]["all"]["as_asked"]["share"]
    assert {"positive_ending", "vader_positive", "distinct_2", "frechet_horror", "topic_coherence_mean"} <= set(numbers)
    json.dumps(metrics)  # all plain JSON


def test_a_saved_reference_gives_the_same_measures_as_one_built_in_place(tmp_path, nltk_data):
    from components.evaluate.config import EvaluateConfig
    from components.evaluate.reference import Reference, build_reference
    from components.evaluate.stage import run_evaluate

    data = _dataset_with_test_split(tmp_path / "data")
    config = EvaluateConfig(sentiment={"model": None}, topics={"n": 2}, genre={"train_per_group": 10, "reference_per_genre": 4})
    summary = build_reference(data, config, tmp_path / "reference")
    assert summary["closeness_passages"] == {"fairy_tale": 4, "horror": 4} and summary["provenance"]["seed"] == 42
    assert not (tmp_path / "reference.tmp").exists()

    # The saved classifier is only weights (in C order: safetensors scrambles Fortran order).
    built, loaded = Reference.build(data, config), Reference.load(tmp_path / "reference")
    texts = ["the ghost screamed in the dark grave", "the princess danced at the golden castle"]
    assert loaded.classifier.predict(texts) == built.classifier.predict(texts)
    assert loaded.held_out == built.held_out and len(loaded.held_out["horror"]) == 4

    stories = _story_file(tmp_path / "stories.jsonl", many_stories(6))
    fresh = run_evaluate([str(stories)], config, tmp_path / "a", dataset=str(data))["sets"][0]
    reused = run_evaluate([str(stories)], config, tmp_path / "b", dataset=str(data), reference=str(tmp_path / "reference"))["sets"][0]
    for key in ("genre_fidelity", "closeness", "copying"):
        assert fresh[key] == reused[key], key


def test_closeness_pairs_each_story_with_a_held_out_cut_of_its_length(tmp_path):
    from components.evaluate.config import EvaluateConfig
    from components.evaluate.stage import Corpus

    data = _dataset_with_test_split(tmp_path / "data")
    corpus = Corpus(str(data), EvaluateConfig(genre={"train_per_group": 10, "reference_per_genre": 2}))
    assert corpus.classifier_report()["unseen_books"] is False, "a random split tests on books the classifier trained on"
    embedded, real = [], corpus.embed
    corpus.embed = lambda texts: embedded.append(texts) or real(texts)
    records = [{**r, "text": " ".join(r["text"].split()[: 5 + i])} for i, r in enumerate(many_stories(6))]
    out = corpus.closeness(records)
    held_out = corpus.reference.held_out
    for stories, cuts, genre in zip(embedded[0::2], embedded[1::2], sorted(held_out)):
        shortest = min(len(p.split()) for p in held_out[genre])
        pairs = [(len(t.split()), len(c.split())) for t, c in zip(stories, cuts)]
        assert all(c == t for t, c in pairs if t <= shortest) and all(c <= t for t, c in pairs), "each cut is as long as its story"
        assert any(t <= shortest for t, _ in pairs)
        assert all(" ".join(c.split()) in " ".join(" ".join(p.split()) for p in held_out[genre]) for c in cuts), "cut from the genre's passages"
    assert len(held_out["horror"]) == 2 and out["horror"]["stories"] == out["horror"]["passages"] == 6, "6 cuts of 2 passages"
    whole = out["all"]
    assert whole["two_sample"]["n"] == 2 * 12 and whole["stories"] == 12
    assert whole["two_sample"]["ci95"][0] <= whole["two_sample"]["accuracy"] <= whole["two_sample"]["ci95"][1]


def test_a_dataset_without_test_passages_still_gets_a_reference(tmp_path, nltk_data):
    import pyarrow.parquet as pq

    from components.evaluate.config import EvaluateConfig
    from components.evaluate.reference import Reference

    data = _dataset_with_test_split(tmp_path / "data")
    table = pq.read_table(data / "data" / "test.parquet")
    pq.write_table(table.slice(0, 0), data / "data" / "test.parquet")
    reference = Reference.build(data, EvaluateConfig(genre={"train_per_group": 10}))
    assert reference.summary["genre_classifier"]["accuracy"] is None and reference.summary["genre_classifier"]["n"] == 0
    assert reference.held_out == {}
    assert reference.summary["closeness_errors"]["horror"] == "the dataset's test split has 0 passages of horror; closeness needs at least 2"


def test_the_sentiment_classifier_reads_windows_from_the_end():
    from components.evaluate.sentiment import windows

    assert windows(list(range(10)), 4) == [[6, 7, 8, 9], [2, 3, 4, 5], [0, 1]]
    assert windows(list(range(10)), 4, most=1) == [[6, 7, 8, 9]], "one window: the ending, as left truncation reads it"
    assert windows(list(range(3)), 4) == [[0, 1, 2]] and windows([], 4) == []


@pytest.mark.parametrize("groups", [2, 3])
def test_the_genre_classifier_predicts_what_scikit_learn_predicts(groups, tmp_path):
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from components.evaluate.genre_classifier import GenreClassifier

    rng = np.random.default_rng(groups)
    vectors = rng.normal(size=(60, 8)).astype(np.float32)
    labels = [["a", "b", "c"][i % groups] for i in range(60)]
    vectors[:, 0] += [2.0 * (i % groups) for i in range(60)]
    ours = GenreClassifier.fit(["x"] * 60, labels, vectors=vectors)
    theirs = LogisticRegression(max_iter=2000, C=1.0, random_state=42).fit(vectors, labels)
    probe = rng.normal(size=(40, 8)).astype(np.float32) * 2
    assert ours.predict(["x"] * 40, probe) == list(theirs.predict(probe))
    ours.save(tmp_path)
    assert GenreClassifier.load(tmp_path).predict(["x"] * 40, probe) == list(theirs.predict(probe))


@pytest.mark.slow  # 30 s; the default suite's demo pipeline test scores a smaller one on held-out books
def test_the_genre_classifier_tells_held_out_books_apart(tmp_path, mirror, nltk_data):
    """Scored on whole books it never saw (the heldout-books split), and says so."""
    from components.dataset.stage import run_dataset
    from components.evaluate.config import EvaluateConfig
    from components.evaluate.reference import build_reference, passages
    from components.common.catalog import load_catalog
    from components.ingest.config import IngestConfig
    from components.ingest.stage import run_ingest
    from pipelines.config import load_experiment

    experiment = load_experiment("heldout-books")
    run_ingest(load_catalog(experiment.catalog), IngestConfig(mirror=str(mirror), offline=True), tmp_path / "books")
    run_dataset(tmp_path / "books", experiment.dataset, tmp_path / "data")
    # Small samples keep this fast; benchmarks/genre_classifier.py and the demo's reference give the figure.
    config = EvaluateConfig(genre={"train_per_group": 40, "test_per_group": 12, "reference_per_genre": 2})
    report = build_reference(tmp_path / "data", config, tmp_path / "reference")["genre_classifier"]
    held_out = set(experiment.dataset.split.holdout_books)
    assert set(report["test_books"]) <= held_out and report["n"] == 12 + 12
    trained_on = {r["book_id"] for r in passages(tmp_path / "data", "train")}
    assert report["unseen_books"] is True and not trained_on & held_out
    assert report["by_label"]["fairy_tale"] >= 0.8 and report["balanced_accuracy"] == round(sum(report["by_label"].values()) / 2, 4), report
    assert report["embedding"] == "all-MiniLM-L6-v2, mean of 256-token windows"


def test_the_training_data_is_sampled_to_the_size_of_a_story_set(tmp_path):
    from components.evaluate.stories import read_set

    data = _dataset_with_test_split(tmp_path / "data")
    name, records, notes = read_set(data, per_genre=5, seed=1)
    assert name == "training data" and len(records) == 10 and {r["genre"] for r in records} == {"horror", "fairy_tale"}
    assert read_set(data, per_genre=5, seed=1)[1] == records, "seeded"
    assert notes == ["5 of the 24 fairy_tale training passages, sampled with seed 1", "5 of the 24 horror training passages, sampled with seed 1"]
    assert len(read_set(data)[1]) == 48


def test_the_offline_sentiment_stand_in_is_trained_once_into_the_model_cache(tmp_path, nltk_data, monkeypatch):
    from components.evaluate import sentiment_model
    from components.evaluate.sentiment import model_folder

    # 32 sentences, scored on 64: the plumbing, not the accuracy (the slow test below checks that).
    train_rows, test_rows = sentiment_model.sentences(42)
    monkeypatch.setattr(sentiment_model, "sentences", lambda seed: (train_rows, test_rows[:64]))
    monkeypatch.setitem(sentiment_model.STANDINS, "minilm-polarity",
                        {"epochs": 1, "limit": 32, "seed": 42, "freeze_embeddings": True, "documents": 4})
    folder = model_folder("minilm-polarity", str(tmp_path / "models"))
    assert folder.startswith(str(tmp_path / "models" / "minilm-polarity-")) and (Path(folder) / "model.safetensors").is_file()
    record = json.loads((Path(folder) / "training.json").read_text())
    assert record["trained_on"] == 32 and record["held_out"] == 64 and record["provenance"]["config"]["freeze_embeddings"] is True
    # Measured on what it never trained on: held-out sentences, and whole reviews of another corpus read as endings are.
    held_out = {text for text, _ in test_rows[:64]}
    assert not held_out & {text for text, _ in train_rows[:32]}
    documents = record["document_accuracy"]
    assert documents["n"] == 8 and "movie_reviews" in documents["data"] and 0 <= documents["accuracy"] <= 1
    assert documents["ci95"][0] <= documents["accuracy"] <= documents["ci95"][1] and record["max_length"] == 64

    def no_training(*args, **kwargs):
        raise AssertionError("trained twice")

    monkeypatch.setattr(sentiment_model, "train", no_training)
    assert model_folder("minilm-polarity", str(tmp_path / "models")) == folder


def test_build_once_keeps_nothing_from_a_killed_build(tmp_path):
    from components.common.models import MARKER, build_once

    def killed(folder):
        (folder / "weights").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_once("m", str(tmp_path), killed)
    assert not (tmp_path / "m").exists(), "a killed build looks unfinished"
    calls = []

    def build(folder):
        calls.append(folder)
        (folder / "weights").write_text("whole")

    first = build_once("m", str(tmp_path), build)
    assert build_once("m", str(tmp_path), build) == first and len(calls) == 1
    assert (first / "weights").read_text() == "whole" and (first / MARKER).is_file()


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
    assert record["document_accuracy"]["accuracy"] >= 0.75, record
    labels = classify([{"text": "A wonderful, moving and beautiful film."}, {"text": "Dull, tedious and badly acted."}], str(tmp_path / "model"))
    assert labels == ["positive", "negative"]
