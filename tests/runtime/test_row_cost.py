"""Prompt lookup's row cost: measured once per model and machine on the real SmolLM2, cached in
RT_HOME, reused, re-measured when the file is corrupt or another key's, and overridden by an
explicit value."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from llama_cpp import llama_cpp as L

from runtime import env
from runtime.config import GenerateOptions, LoadOptions
from runtime.llm import row_cost
from runtime.llm.llama_engine import LlamaEngine

LOAD = LoadOptions(n_ctx=1024, threads=2, prefix_cache=False)
MEASURED = GenerateOptions()  # lookup_row_cost None: measured


def cache_files() -> list[Path]:
    return sorted((env.cache_dir() / "lookup").glob("*.json"))


def overwrite(path: Path, value: float) -> None:
    data = json.loads(path.read_text())
    data["row_cost"] = value
    path.write_text(json.dumps(data))


def test_the_row_cost_is_measured_once_cached_and_reused_by_the_next_load(smollm2_path: Path) -> None:
    assert GenerateOptions().lookup_row_cost is None
    with LlamaEngine(smollm2_path, LOAD) as engine:
        prompt = engine.prompt_tokens("The boiler is serviced every October by Chauffage Dupont.")
        engine._decode(prompt)
        measured = engine.row_cost(MEASURED)
        # measured after the cached tokens, which stay: the KV cache holds exactly them again
        assert engine._cached == prompt
        assert L.llama_memory_seq_pos_max(engine._memory, 0) == len(prompt) - 1
        assert (engine.n_threads, engine.n_threads_batch) == (int(L.llama_n_threads(engine._ctx)),
                                                              int(L.llama_n_threads_batch(engine._ctx)))
    assert row_cost.LOWEST <= measured <= row_cost.HIGHEST
    [path] = cache_files()
    saved = json.loads(path.read_text())
    assert saved["row_cost"] == measured and saved["measured"]["rows"] == LOAD.max_draft
    assert saved["measured"]["single"] < saved["measured"]["batch"]
    # a figure no measurement would give: the next load reads it instead of measuring
    overwrite(path, 0.123)
    with LlamaEngine(smollm2_path, LOAD) as engine:
        assert engine.row_cost(MEASURED) == 0.123
    assert cache_files() == [path]


def test_another_draft_size_is_another_measurement(smollm2_path: Path) -> None:
    with LlamaEngine(smollm2_path, LOAD) as engine:
        engine.row_cost(MEASURED)
    with LlamaEngine(smollm2_path, replace(LOAD, max_draft=4)) as engine:
        engine.row_cost(MEASURED)
    assert [json.loads(p.read_text())["measured"]["rows"] for p in cache_files()] in ([8, 4], [4, 8])


@pytest.mark.parametrize("content", [b"{ not json", b"\xff\xfe", b"[1, 2]", b'{"row_cost": 0.3}',
                                     "another key", "out of range"])
def test_a_corrupt_or_mismatched_cache_file_is_ignored_and_measured_again(
        smollm2_path: Path, content: bytes | str, caplog: pytest.LogCaptureFixture) -> None:
    key = row_cost.cache_key(smollm2_path, LOAD, LOAD.max_draft)
    path = row_cost.cache_file(key)
    path.parent.mkdir(parents=True)
    if content == "another key":
        path.write_text(json.dumps({"key": [*key[:-1], "another-machine"], "row_cost": 0.123}))
    elif content == "out of range":
        path.write_text(json.dumps({"key": key, "row_cost": -4.0}))
    else:
        assert isinstance(content, bytes)
        path.write_bytes(content)
    with caplog.at_level("DEBUG", logger="runtime.llm.row_cost"), LlamaEngine(smollm2_path, LOAD) as engine:
        value = engine.row_cost(MEASURED)
    assert "ignoring row cost cache" in caplog.text
    assert value not in (0.123, 0.3, -4.0) and row_cost.LOWEST <= value <= row_cost.HIGHEST
    assert json.loads(path.read_text())["row_cost"] == value  # written again, whole


def test_an_explicit_row_cost_wins_and_measures_nothing(smollm2_path: Path) -> None:
    with LlamaEngine(smollm2_path, LOAD) as engine:
        assert engine.row_cost(replace(MEASURED, lookup_row_cost=0.3)) == 0.3
    assert cache_files() == []


def test_the_drafter_drafts_by_the_cached_row_cost(smollm2_path: Path) -> None:
    """Dear rows (the highest figure): no draft pays. Cheap ones: drafts. Same tokens either way."""
    source = "The boiler is a Vaillant ecoTEC plus 825, serviced every October by Chauffage Dupont."
    prompt = f"Copy this line exactly.\n{source}\nCopy: {source}\nCopy:"
    options = GenerateOptions(max_tokens=24, prompt_lookup=True)
    with LlamaEngine(smollm2_path, LOAD) as engine:
        engine.row_cost(MEASURED)
    [path] = cache_files()
    drafted = {}
    for value in (row_cost.HIGHEST, row_cost.LOWEST):
        overwrite(path, value)
        with LlamaEngine(smollm2_path, LOAD) as engine:
            generator = engine.stream(prompt, options)
            while True:
                try:
                    next(generator)
                except StopIteration as stop:
                    drafted[value] = stop.value.draft_tokens
                    break
    assert drafted[row_cost.HIGHEST] == 0 and drafted[row_cost.LOWEST] > 0
