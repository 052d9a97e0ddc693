"""A run prefix belongs to one config: another config's run there is refused."""

import json

import pytest

from components.common.errors import TaletuneError
from components.common.runprefix import claim
from tests.conftest import run_cli


def test_a_run_prefix_belongs_to_one_config(tmp_path):
    prefix = str(tmp_path / "reports" / "demo")
    claim(prefix, {"models": ["a"], "train": {"lr": 1}})
    claim(prefix, {"models": ["a"], "train": {"lr": 1}})  # the same config again: fine
    with pytest.raises(TaletuneError, match=r"holds the report of another config \(it differs in models\).*replace_prefix=true"):
        claim(prefix, {"models": ["b"], "train": {"lr": 1}})
    claim(prefix, {"models": ["b"], "train": {"lr": 1}}, replace=True)
    assert json.loads((tmp_path / "reports" / "demo" / "experiment.json").read_text())["models"] == ["b"]


def test_a_run_of_another_config_is_refused_before_any_task(tmp_path, mirror, nltk_data):
    from pipelines.config import load_experiment

    other = load_experiment("demo", ["models=[smollm2-135m]"])
    prefix = tmp_path / "cache" / "reports" / "demo"
    claim(str(prefix), other.fingerprint())
    env = {"TALETUNE_RUNS": str(tmp_path / "runs"), "TALETUNE_GUTENBERG_MIRROR": str(mirror), "NLTK_DATA": str(nltk_data)}
    result = run_cli("pipelines", "run", "--config", "demo", env=env)
    assert result.returncode == 2 and "holds the report of another config (it differs in models)" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "runs").exists()
    # Changing only how runs are measured keeps the prefix.
    same = load_experiment("demo", ["models=[smollm2-135m]", "evaluate.topics.n=3", "report.samples_per_set=1"])
    claim(str(prefix), same.fingerprint())
