"""Prompt lookup's row cost: measured once per model and machine on the real SmolLM2, cached in
RT_HOME, reused, re-measured when the file is corrupt or another key's, and overridden by an
explicit value."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from runtime import env
from runtime.config import GenerateOptions, LoadOptions
from runtime.llm import row_cost
from runtime.llm.kv_sequence import KVSequence
from runtime.llm.llama_engine import LlamaEngine
from runtime.llm.llama_native import ggml_kv_type, init_backend
from runtime.llm.native import ContextParams, NativeContext, NativeModel

LOAD = LoadOptions(n_ctx=1024, threads=2, prefix_cache=False)
# where only the cached figure matters: 2 threads spin against the other worker of the fast path
ONE_THREAD = replace(LOAD, threads=1)
MEASURED = GenerateOptions()  # lookup_row_cost None: measured


def cache_files() -> list[Path]:
    return sorted((env.cache_dir() / "lookup").glob("*.json"))


def overwrite(path: Path, value: float) -> None:
    data = json.loads(path.read_text())
    data["row_cost"] = value
    path.write_text(json.dumps(data))


def test_measuring_leaves_the_kv_cache_and_the_thread_counts_as_they_were(smollm2_path: Path) -> None:
    init_backend()
    model = NativeModel(smollm2_path)
    context = NativeContext(model, ContextParams(n_ctx=1024, n_batch=512, n_outputs=9, n_threads=2,
                                                 n_threads_batch=2, kv_type=ggml_kv_type("f16")))
    try:
        sequence = KVSequence(context)
        prompt = model.tokenize(b"The boiler is serviced every October by Chauffage Dupont.", True, True)
        sequence.decode(prompt)
        filler = model.tokenize(row_cost.filler_text(row_cost.CONTEXT_TOKENS + 9).encode(), False, False)
        measured = row_cost.measure_after(sequence, filler, 8)
        # measured after the held tokens, which stay: the KV cache holds exactly them again
        assert sequence.tokens == tuple(prompt)
        assert context.last_position() == len(prompt) - 1
        assert context.threads == (2, 2)
        assert measured is not None and measured.rows == 8 and measured.single < measured.batch
        assert row_cost.measure_after(sequence, filler[:10], 8) is None  # too little filler
    finally:
        context.close()
        model.close()


def test_the_row_cost_is_measured_once_cached_and_reused_by_the_next_load(smollm2_path: Path) -> None:
    assert GenerateOptions().lookup_row_cost is None
    with LlamaEngine(smollm2_path, LOAD) as engine:
        for _ in engine.stream("The boiler is serviced every October by", GenerateOptions(max_tokens=4)):
            pass
        before = engine.cached_tokens
        threads = (engine.n_threads, engine.n_threads_batch)
        measured = engine.row_cost(MEASURED)
        assert engine.cached_tokens == before  # measured after the cached tokens, which stay
        assert (engine.n_threads, engine.n_threads_batch) == threads
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
    with LlamaEngine(smollm2_path, ONE_THREAD) as engine:
        engine.row_cost(MEASURED)
    [path] = cache_files()
    drafted = {}
    for value in (row_cost.HIGHEST, row_cost.LOWEST):
        overwrite(path, value)
        with LlamaEngine(smollm2_path, ONE_THREAD) as engine:
            generator = engine.stream(prompt, options)
            while True:
                try:
                    next(generator)
                except StopIteration as stop:
                    drafted[value] = stop.value.draft_tokens
                    break
    assert drafted[row_cost.HIGHEST] == 0 and drafted[row_cost.LOWEST] > 0
