"""Command lines: help texts, and one readable message with exit code 2 for bad input."""

import json

import pytest

from tests.conftest import run_cli


def assert_one_clear_error(result, *needles):
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("module", [("components.ingest",), ("components.ingest", "fetch"), ("components.ingest", "clean"), ("components.dataset",), ("pipelines", "run")])
def test_help(module):
    result = run_cli(*module, "--help")
    assert result.returncode == 0 and "usage:" in result.stdout


def test_clean_writes_text_to_stdout_and_report_to_stderr(mirror):
    result = run_cli("components.ingest", "clean", str(mirror / "cache/epub/1952/pg1952.txt"))
    assert result.returncode == 0
    assert result.stdout.startswith("It is very seldom that mere ordinary people")
    report = json.loads(result.stderr)
    assert report["metadata"]["title"] == "The Yellow Wallpaper" and "licence" in report["summary"]


def test_clean_a_file_that_does_not_exist(tmp_path):
    assert_one_clear_error(run_cli("components.ingest", "clean", str(tmp_path / "nope.txt")), "does not exist")


def test_unknown_ebook_number(http_mirror, tmp_path):
    catalog = tmp_path / "c.yaml"
    catalog.write_text("genres: {horror: {prompt: p, books: [999999]}}\n")
    result = run_cli(
        "components.ingest", "fetch", "--out", str(tmp_path / "out"), "--catalog", str(catalog),
        "--set", f"base_url={http_mirror.url}", "--set", "delay_seconds=0",
    )
    assert_one_clear_error(result, "ebook 999999 was not found")


def test_mirror_that_does_not_exist(tmp_path):
    result = run_cli("components.ingest", "fetch", "--out", str(tmp_path), env={"TALETUNE_GUTENBERG_MIRROR": str(tmp_path / "nowhere")})
    assert_one_clear_error(result, "nowhere does not exist")


@pytest.mark.parametrize("text, needle", [
    ("genres: {horror: [1, 2\n", "not valid YAML"),
    ("genres: {horror: {prompt: p, books: [1]}}\nextra: 1\n", "unknown key 'extra'"),
    ("genres: {horror: {prompt: p, books: []}}\n", "genre 'horror' has no books"),
])
def test_bad_catalogs(tmp_path, text, needle):
    catalog = tmp_path / "c.yaml"
    catalog.write_text(text)
    assert_one_clear_error(run_cli("components.ingest", "fetch", "--out", str(tmp_path / "o"), "--catalog", str(catalog)), needle)


def test_chunk_size_zero(tmp_path):
    result = run_cli("components.dataset", "--books", str(tmp_path), "--out", str(tmp_path / "o"), "--set", "lines_per_passage=0")
    assert_one_clear_error(result, "lines_per_passage")


def test_s3_bucket_that_does_not_exist(s3_server, tmp_path, mirror):
    result = run_cli(
        "components.ingest", "fetch", "--out", str(tmp_path / "o"), "--set", "cache=s3://no-such-bucket/cache",
        env={"AWS_ENDPOINT_URL": s3_server, "TALETUNE_GUTENBERG_MIRROR": str(mirror)},
    )
    assert_one_clear_error(result, "bucket 'no-such-bucket' does not exist")


def test_pipeline_run_checks_the_config_before_starting(tmp_path, mirror):
    env = {"TALETUNE_RUNS": str(tmp_path / "runs"), "TALETUNE_GUTENBERG_MIRROR": str(mirror)}
    assert_one_clear_error(run_cli("pipelines", "run", "--set", "dataset.lines_per_passage=0", env=env), "lines_per_passage")
    assert_one_clear_error(run_cli("pipelines", "run", "--config", "nope", env=env), "config 'nope' not found")
    assert not (tmp_path / "runs").exists()
