"""``--repack auto``: the hybrid where the preflight says it fits with headroom and a probe in a
throwaway process showed the repacked kernels work; the probe's outcome cached per model file,
llama.cpp version and CPU. Real SmolLM2, real probe processes (``RT_TEST_CRASH=probe`` makes
the probe crash as AMX kernels do on some CPUs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from runtime import env
from runtime.cli import cli
from runtime.config import LoadOptions
from runtime.llm import repack_choice
from runtime.llm.repack_choice import choose, preview
from runtime.models.gguf_file import GGUFInfo, inspect_gguf

AUTO = LoadOptions(n_ctx=512)


@pytest.fixture(scope="module")
def smollm2(smollm2_path: Path) -> GGUFInfo:
    return inspect_gguf(smollm2_path)


def no_probe(path: Path, options: LoadOptions) -> None:
    raise AssertionError("no probe should run")


def probe_files() -> list[Path]:
    return sorted((env.cache_dir() / "repack").glob("*.json"))


def test_auto_leaves_a_small_model_plain_without_a_probe(smollm2: GGUFInfo) -> None:
    options, decision = choose(smollm2, AUTO, probe=no_probe)
    assert options.repack is False and decision.asked == "auto" and not decision.repack
    assert "too small to gain" in decision.reason
    assert probe_files() == []


def test_auto_falls_back_to_plain_loading_when_memory_is_short(smollm2: GGUFInfo,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # the plain load (about 0.2 GB at --ctx 512) fits in 250 MB; the hybrid's copy and context do not
    monkeypatch.setenv("RT_MEMORY_LIMIT", "250M")
    options, decision = choose(smollm2, AUTO, min_weights=0, probe=no_probe)
    assert options.repack is False and not decision.repack
    assert "RT_MEMORY_LIMIT" in decision.reason and "repacked copy and its context" in decision.reason
    monkeypatch.setenv("RT_MEMORY_LIMIT", "64G")
    assert preview(smollm2, AUTO, min_weights=0).repack  # enough memory: auto would try it


def test_a_crashing_probe_means_no_repack_and_is_remembered(smollm2: GGUFInfo,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RT_TEST_CRASH", "probe")  # the probe process segfaults, as AMX kernels do
    options, decision = choose(smollm2, AUTO, min_weights=0)
    assert options.repack is False and "crashed" in decision.reason
    [path] = probe_files()
    assert json.loads(path.read_text())["works"] is False
    monkeypatch.delenv("RT_TEST_CRASH")
    again, cached = choose(smollm2, AUTO, min_weights=0, probe=no_probe)  # read, not probed again
    assert again.repack is False and cached == decision
    assert preview(smollm2, AUTO, min_weights=0) == decision


def test_a_working_probe_chooses_the_hybrid_and_is_keyed_by_model_llama_and_cpu(
        smollm2: GGUFInfo, monkeypatch: pytest.MonkeyPatch) -> None:
    options, decision = choose(smollm2, AUTO, min_weights=0)
    if not decision.repack:
        pytest.skip(f"repacked weights crash on this CPU: {decision.reason}")
    assert options.repack is True and "worked" in decision.reason
    assert choose(smollm2, AUTO, min_weights=0, probe=no_probe) == (options, decision)
    key = repack_choice.probe_key(smollm2.path)
    assert repack_choice.cpu_name() in key and repack_choice.llama_version() in key
    monkeypatch.setattr(repack_choice, "cpu_name", lambda: "another CPU")
    assert repack_choice.read_probe(smollm2.path) is None  # another CPU: probed again


def test_no_repack_and_a_corrupt_cache_file(smollm2: GGUFInfo) -> None:
    options, decision = choose(smollm2, LoadOptions(repack=False), min_weights=0, probe=no_probe)
    assert options.repack is False and decision.asked == "off" and decision.reason == "--no-repack"
    path = repack_choice.probe_file(repack_choice.probe_key(smollm2.path))
    path.parent.mkdir(parents=True)
    path.write_text("{ not json")
    assert repack_choice.read_probe(smollm2.path) is None


def test_rt_info_says_what_auto_would_choose_and_why(smollm2_path: Path) -> None:
    result = CliRunner().invoke(cli, ["info", str(smollm2_path)])
    assert result.exit_code == 0, result.output
    assert "repack (auto)" in result.stdout and "no: its weights" in result.stdout
    data = json.loads(CliRunner().invoke(cli, ["info", str(smollm2_path), "--json"]).stdout)
    assert data["repack"]["auto"] == {"asked": "auto", "repack": False,
                                      "reason": preview(inspect_gguf(smollm2_path), LoadOptions()).reason}
    forced = CliRunner().invoke(cli, ["info", str(smollm2_path), "--repack"]).stdout
    assert "repack (on)" in forced and "repacked copy" in forced and "and its context" in forced


def test_ask_json_says_how_the_model_was_loaded_and_why(smollm2_path: Path) -> None:
    result = CliRunner().invoke(cli, ["ask", "--no-rag", "--json", "--model", str(smollm2_path),
                                      "--ctx", "512", "--max-tokens", "2", "Hi"])
    assert result.exit_code == 0, result.output
    loading = json.loads(result.stdout)["timings"]["loading"]
    assert loading["repack"]["asked"] == "auto" and loading["repack"]["repack"] is False
    assert "too small to gain" in loading["repack"]["reason"]


def test_on_windows_auto_counts_the_hybrid_against_the_commit_headroom(smollm2: GGUFInfo,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Faked platform facts: the repacked copy and the second context are committed memory;
    plenty of RAM does not help when the page file is small."""
    from tests.runtime.test_memory_windows import windows

    plain = repack_choice.estimate_memory(smollm2, AUTO)
    windows(monkeypatch, commit=plain.anonymous + 50 * 2**20, physical=64 * 2**30)
    options, decision = choose(smollm2, AUTO, min_weights=0, probe=no_probe)
    assert options.repack is False and "committed memory" in decision.reason
    assert "commit headroom" in decision.reason
    windows(monkeypatch, commit=8 * 2**30, physical=64 * 2**30)
    assert preview(smollm2, AUTO, min_weights=0).repack
