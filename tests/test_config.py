"""Catalog and config validation: each mistake is one message that names it."""

import pytest

from components.common.config import apply_overrides, load_config
from components.common.errors import TaletuneError
from components.dataset.config import DatasetConfig
from components.common.catalog import load_catalog
from pipelines.config import CONFIG_DIR, load_experiment


def test_default_catalog_is_the_reference_study():
    catalog = load_catalog()
    assert [b.id for b in catalog.genres["horror"].books] == [53419, 17893, 15143, 345, 84, 43, 1952]
    assert [b.id for b in catalog.genres["fairy_tale"].books] == [1597, 128, 7074, 7439, 500, 2591, 29021, 3435, 503]
    assert [b.id for b in catalog.other.books] == [1342, 1661]
    assert catalog.prompt("horror") == "Write me a horror story"
    assert catalog.prompt("other") is None


def test_catalog_that_is_not_yaml(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("genres: {horror: [1, 2\n")
    with pytest.raises(TaletuneError, match=r"is not valid YAML at line \d+"):
        load_catalog(bad)


def test_catalog_with_unknown_key(tmp_path):
    with pytest.raises(TaletuneError, match=r"unknown key 'genres.horror.bookz'.*books, prompt"):
        load_catalog({"genres": {"horror": {"prompt": "p", "bookz": [1]}}})


def test_genre_without_books():
    with pytest.raises(TaletuneError, match="genre 'horror' has no books"):
        load_catalog({"genres": {"horror": {"prompt": "p", "books": []}}})


def test_book_listed_twice():
    catalog = load_catalog({"genres": {"a": {"prompt": "p", "books": [1]}, "b": {"prompt": "q", "books": [1]}}})
    with pytest.raises(TaletuneError, match="listed under both"):
        catalog.books()


def test_book_entries():
    catalog = load_catalog({"genres": {"a": {"prompt": "p", "books": [5, "6", {"id": 7}, {"path": "s3://b/x y.txt"}]}}})
    assert [b.key for b in catalog.genres["a"].books] == ["5", "6", "7", "file-x-y"]
    with pytest.raises(TaletuneError, match="either an ebook number"):
        load_catalog({"genres": {"a": {"prompt": "p", "books": [{"title": "no source"}]}}})


def test_overrides_are_parsed_as_yaml():
    assert apply_overrides({"a": {"b": 1}}, ["a.c=3", "d=[1, 2]", "a.b=x"]) == {"a": {"b": "x", "c": 3}, "d": [1, 2]}
    with pytest.raises(TaletuneError, match="key.subkey=value"):
        apply_overrides({}, ["novalue"])


def test_defaults_then_yaml_then_overrides(tmp_path):
    path = tmp_path / "d.yaml"
    path.write_text("lines_per_passage: 30\nseed: 7\n")
    config = load_config(DatasetConfig, path, ["seed=9"])
    assert (config.lines_per_passage, config.seed, config.min_lines) == (30, 9, 10)


@pytest.mark.parametrize("override, message", [
    ("dataset.lines_per_passage=0", "dataset.lines_per_passage: Input should be greater than 0"),
    ("dataset.template=gpt", "dataset.template"),
    ("dataset.split.test=0.95", "must leave some data for training"),
    ("ingest.delay=1", "unknown key 'ingest.delay'"),
])
def test_bad_experiment_settings(override, message):
    with pytest.raises(TaletuneError, match=message):
        load_experiment("demo", [override])


def test_every_shipped_config_loads():
    names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    assert {"demo", "seed-study", "seed-study-7b", "heldout-books"} <= set(names)
    for name in names:
        config = load_experiment(name)
        load_catalog(config.catalog)
        for spec in config.models:
            assert config.train_config(spec).format == config.generate_config(spec).format == spec.format


def test_models_list_with_their_own_formats_and_settings():
    config = load_experiment("demo", ["models=[smollm2-135m, {name: gemma3-270m, lora: {r: 4}, precision: fp32, train: {learning_rate: 0.001}}]",
                                      "train.lora.alpha=8"])
    smol, gemma = config.models
    assert (smol.label, smol.format, gemma.label, gemma.format) == ("smollm2-135m", "chat", "gemma3-270m", "llama")
    train = config.train_config(gemma)
    assert (train.model, train.format, train.precision, train.learning_rate) == ("gemma3-270m", "llama", "fp32", 0.001)
    assert (train.lora.r, train.lora.alpha) == (4, 8), "an entry's lora merges over the shared one key by key"
    assert config.train_config(smol).lora.r == 16 and config.train_config(smol).learning_rate == config.train.learning_rate
    assert config.generate_config(gemma).model == "gemma3-270m"
    falcon = load_experiment("seed-study-7b").models[0]
    assert (falcon.label, falcon.format) == ("falcon-7b-instruct", "falcon")


@pytest.mark.parametrize("override, message", [
    ("train.model=smollm2-135m", "list it under models:"),
    ("generate.template=chat", "set per model under models:"),
    ("models=[smollm2-135m, smollm2-135m]", "same label"),
    ("models=[]", "models"),
    ("models=[{name: x/y, format: gpt}]", "format"),
    ("models=[{name: x/y, train: {nope: 1}}]", "unknown key 'nope'"),
])
def test_bad_model_settings(override, message):
    with pytest.raises(TaletuneError, match=message):
        load_experiment("demo", [override])


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
def test_every_config_round_trips_through_the_pipeline_parameters(name):
    """What the compiled pipeline's parameters hold is the config, nulls included."""
    from components.common.config import from_parameter
    from components.evaluate.config import EvaluateConfig
    from components.generate.config import GenerateSettings
    from components.train.config import for_model
    from pipelines.pipeline import parameters

    config = load_experiment(name, ["evaluate.data_per_genre=null"])
    values = parameters(config)
    evaluate = from_parameter(EvaluateConfig, values["evaluate_config"])
    assert evaluate == config.evaluate and evaluate.data_per_genre is None, "an explicit null stays null"
    assert from_parameter(GenerateSettings, values["generate_config"]) == config.generate
    for spec in config.models:
        assert for_model(values["train_config"], spec.train_overrides(), config.train_config(spec).shape()) == config.train_config(spec)
    for stage in ("ingest", "dataset", "report"):
        assert from_parameter(type(getattr(config, stage)), values[f"{stage}_config"]) == getattr(config, stage)


def test_a_run_that_changes_the_dags_shape_fails_at_once():
    from components.common.config import to_parameter
    from components.train.config import for_model

    config = load_experiment("demo")
    shape = config.train_config(config.models[0]).shape()
    two_levels = to_parameter(config.train.model_copy(update={"levels": config.train.levels[:2]}))
    with pytest.raises(TaletuneError, match="compiled for 3 in nested mode.*compile again"):
        for_model(two_levels, config.models[0].train_overrides(), shape)


def test_unknown_config_name_lists_the_known_ones():
    with pytest.raises(TaletuneError, match="demo"):
        load_experiment("nope")


def test_group_order_does_not_depend_on_key_order():
    a = load_catalog({"genres": {"horror": {"prompt": "h", "books": [3, 1]}, "fairy_tale": {"prompt": "f", "books": [2]}}, "other": {"books": [9]}})
    b = load_catalog({"other": {"books": [9]}, "genres": {"fairy_tale": {"prompt": "f", "books": [2]}, "horror": {"prompt": "h", "books": [3, 1]}}})
    assert [(g, book.key) for g, book in a.books()] == [(g, book.key) for g, book in b.books()]
    assert [(g, book.key) for g, book in a.books()] == [("fairy_tale", "2"), ("horror", "3"), ("horror", "1"), ("other", "9")]
