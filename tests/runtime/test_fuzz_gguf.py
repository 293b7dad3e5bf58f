"""Mutated headers of the real GGUFs through inspect_gguf and the CLI (issue 8 §4, finding 4).

The short fuzz here runs ~300 cases; benchmarks/fuzz_headers.py runs 10,000 per model. Every
count rt sizes something by is bounded with a ModelFileError that names the field and its value.
"""

from __future__ import annotations

import os
import random
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime.errors import ModelFileError, RtError
from runtime.models.gguf_file import MAX_ARRAY, MAX_TENSORS, inspect_gguf
from tests.runtime.fuzz_headers import Field, GGUFLayout, fuzz_gguf, gguf_layout, mutate_gguf
from tests.slow import slow_after_first

ROOT = Path(__file__).resolve().parents[2]
FAST = 2.0  # seconds: every bad header is refused well within this (the real files take ~0.1-0.3 s)


@pytest.fixture(scope="module")
def smollm2_layout(smollm2_path: Path) -> GGUFLayout:
    return gguf_layout(smollm2_path)


def _field(layout: GGUFLayout, key: str, kind: str = "value") -> Field:
    return next(f for f in layout.fields if f.key == key and f.kind == kind)


def patched(layout: GGUFLayout, source: Path, target: Path, *edits: tuple[Field, bytes]) -> Path:
    """The header of ``source`` with ``edits`` (field, new bytes), then a sparse rest of the file."""
    data = bytearray(layout.data[: layout.header_end + 64])
    for f, raw in edits:
        data[f.offset : f.offset + len(raw)] = raw
    with open(target, "wb") as fh:
        fh.write(data)
        fh.truncate(source.stat().st_size)
    return target


def refused(path: Path, *words: str) -> str:
    start = time.perf_counter()
    with pytest.raises(ModelFileError) as caught:
        inspect_gguf(path)
    assert time.perf_counter() - start < FAST
    message = str(caught.value)
    for word in words:
        assert word in message, message
    assert len(message) < 400, message
    return message


@pytest.mark.parametrize(("value", "words"), [
    (2**31, "llama.block_count is 2147483648, outside the plausible range 1 to 512"),
    (0, "llama.block_count is 0, outside the plausible range 1 to 512"),
    (513, "llama.block_count is 513"),
])
def test_block_count_out_of_range(tmp_path: Path, smollm2_path: Path, smollm2_layout: GGUFLayout,
                                  value: int, words: str) -> None:
    block_count = _field(smollm2_layout, "llama.block_count")
    refused(patched(smollm2_layout, smollm2_path, tmp_path / "m.gguf", (block_count, struct.pack("<I", value))), words)


@pytest.mark.parametrize(("key", "value", "words"), [
    ("llama.attention.head_count", 2**32 - 1, "llama.attention.head_count is 4294967295"),
    ("llama.attention.head_count_kv", 2**31, "llama.attention.head_count_kv is 2147483648"),
    ("llama.context_length", 2**32 - 1, "llama.context_length is 4294967295"),
    ("llama.embedding_length", 2**31, "llama.embedding_length is 2147483648"),
    ("llama.feed_forward_length", 2**32 - 1, "llama.feed_forward_length is 4294967295"),
    ("llama.vocab_size", 2**31, "llama.vocab_size is 2147483648"),
])
def test_model_counts_are_bounded(tmp_path: Path, smollm2_path: Path, smollm2_layout: GGUFLayout,
                                  key: str, value: int, words: str) -> None:
    f = _field(smollm2_layout, key)
    refused(patched(smollm2_layout, smollm2_path, tmp_path / "m.gguf", (f, struct.pack("<I", value))),
            words, "outside the plausible range")


def test_a_count_of_the_wrong_type(tmp_path: Path, smollm2_path: Path, smollm2_layout: GGUFLayout) -> None:
    tag, value = _field(smollm2_layout, "llama.block_count", "type"), _field(smollm2_layout, "llama.block_count")
    nan = struct.pack("<f", float("nan"))  # u32 and f32 have the same width: the rest of the file still parses
    refused(patched(smollm2_layout, smollm2_path, tmp_path / "m.gguf", (tag, struct.pack("<I", 6)), (value, nan)),
            "llama.block_count is nan, not a whole number")


def test_duplicate_tokens(tmp_path: Path, smollm2_path: Path, smollm2_layout: GGUFLayout) -> None:
    tokens = smollm2_layout.tokens
    (at, n), (source, _) = next((a, b) for a, b in zip(tokens, tokens[1:]) if a[1] == b[1] == 3)
    data = smollm2_layout.data
    first_id = tokens.index((at, n))
    raw = data[source : source + n]
    path = patched(smollm2_layout, smollm2_path, tmp_path / "m.gguf", (Field(at, n, "token"), raw))
    refused(path, f"token {raw.decode()!r} appears twice in the vocabulary (ids {first_id} and {first_id + 1})")


def test_duplicate_metadata_key(tmp_path: Path, smollm2_path: Path, smollm2_layout: GGUFLayout) -> None:
    rng = random.Random(0)
    while True:  # duplicate one KV pair (the mutation the fuzz uses), until it is not the first
        target = tmp_path / "m.gguf"
        if mutate_gguf(rng, smollm2_layout, smollm2_path.stat().st_size, target) == "duplicate-kv":
            break
    refused(target, "appears twice in the header")


def test_huge_array_length(tmp_path: Path, smollm2_path: Path, smollm2_layout: GGUFLayout) -> None:
    count = _field(smollm2_layout, "tokenizer.ggml.merges[]", "count")
    refused(patched(smollm2_layout, smollm2_path, tmp_path / "m.gguf", (count, struct.pack("<Q", MAX_ARRAY + 1))),
            f"an array of {MAX_ARRAY + 1} values", "implausible")


def test_huge_tensor_count(tmp_path: Path, smollm2_path: Path, smollm2_layout: GGUFLayout) -> None:
    n_tensors = _field(smollm2_layout, "n_tensors", "count")
    refused(patched(smollm2_layout, smollm2_path, tmp_path / "m.gguf", (n_tensors, struct.pack("<Q", 100_000))),
            f"tensor count is 100000, implausibly many (at most {MAX_TENSORS})")


def test_huge_dim_beside_a_zero_dim(tmp_path: Path, smollm2_path: Path, smollm2_layout: GGUFLayout) -> None:
    dims = [f for f in smollm2_layout.fields if f.kind == "dim"][:2]  # token_embd.weight: 576 x 49152
    path = patched(smollm2_layout, smollm2_path, tmp_path / "m.gguf",
                   (dims[0], struct.pack("<Q", 0)), (dims[1], struct.pack("<Q", 2**64 - 1)))
    refused(path, "implausible")


@pytest.mark.parametrize(("model", "cases", "seed"), [("smollm2", 240, 1), ("gemma", 60, 2)])
@pytest.mark.slow
def test_short_fuzz(request: pytest.FixtureRequest, tmp_path: Path, model: str, cases: int, seed: int) -> None:
    """Mutated real headers: only RtError subclasses, each case within the time bound."""
    source = request.getfixturevalue(f"{model}_path")
    report = fuzz_gguf(source, cases, seed, tmp_path, bound_s=FAST * 2)
    assert report.tracebacks == [] and report.hangs == 0, report.summary()
    assert report.cases == cases and len(report.by_mutation) >= 8, report.summary()
    assert report.outcomes["ModelFileError"] > cases // 3, report.summary()  # the fuzz reaches the checks


def _rt(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RT_MEMORY_LIMIT": "64G"}
    env.pop("RT_DEBUG", None)
    return subprocess.run([sys.executable, "-c", "from runtime.cli import main; main()", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)


def _fuzzed_files(folder: Path, smollm2_path: Path, layout: GGUFLayout) -> list[Path]:
    """Finding 4's files and three seeded fuzz cases that inspect_gguf refuses."""
    block_count = _field(layout, "llama.block_count")
    files = [patched(layout, smollm2_path, folder / "blocks-2-31.gguf", (block_count, struct.pack("<I", 2**31))),
             patched(layout, smollm2_path, folder / "blocks-0.gguf", (block_count, struct.pack("<I", 0)))]
    rng, size = random.Random(7), smollm2_path.stat().st_size
    while len(files) < 5:
        target = folder / f"fuzz-{len(files)}.gguf"
        mutate_gguf(rng, layout, size, target)
        try:
            inspect_gguf(target)
        except RtError:
            files.append(target)
    return files


@pytest.mark.parametrize("command", slow_after_first(["info", "ask"]))
def test_cli_on_fuzzed_files(tmp_path: Path, smollm2_path: Path, smollm2_layout: GGUFLayout, command: str) -> None:
    """`rt info` and `rt ask` on bad headers: one line, a non-zero exit, no traceback, no native crash."""
    for path in _fuzzed_files(tmp_path, smollm2_path, smollm2_layout):
        args = ["info", str(path)] if command == "info" else ["ask", "--no-rag", "--model", str(path), "hi"]
        result = _rt(*args)
        assert result.returncode == 1, (path.name, result.returncode, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("rt: error: "), (path.name, result.stderr)
        assert "Traceback" not in result.stderr and result.stdout == ""
        if path.name.startswith("blocks-"):
            assert "llama.block_count is" in lines[0]


def test_no_kv_heads_in_the_memory_advice(tmp_path: Path) -> None:
    """head_count_kv = 0 (legal: no KV cache) must not divide by zero when `rt info` suggests a --ctx.

    The model has no attention tensors, as a model without KV heads has none: SmolLM2 patched to
    0 KV heads is a file llama.cpp refuses (its attn_k would be 576x0), and so does `rt info`
    (tests/runtime/test_llama_agrees.py).
    """
    import gguf
    import numpy as np
    from click.testing import CliRunner

    from runtime.cli import cli

    path = tmp_path / "m.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_block_count(2)
    writer.add_context_length(8192)
    writer.add_embedding_length(576)
    writer.add_head_count(9)
    writer.add_head_count_kv(0)
    writer.add_tensor("token_embd.weight", np.zeros((4096, 576), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    result = CliRunner().invoke(cli, ["info", str(path), "--repack"], env={"RT_MEMORY_LIMIT": "20M"})
    assert result.exit_code == 0, result.output
    assert "KV cache 0 B" in result.stdout and "try without --repack" in result.stdout


@pytest.mark.slow
def test_ask_on_fuzzed_files_that_pass_the_preflight(tmp_path: Path, smollm2_path: Path,
                                                      smollm2_layout: GGUFLayout) -> None:
    """Mutations inspect_gguf accepts reach llama.cpp: an answer or one error line, never a crash."""
    rng, size = random.Random(12), smollm2_path.stat().st_size
    passing: list[Path] = []
    while len(passing) < 4:
        target = tmp_path / f"fuzz-{len(passing)}.gguf"
        if mutate_gguf(rng, smollm2_layout, size, target) == "byte-run":
            continue
        try:
            inspect_gguf(target)
        except RtError:
            continue
        passing.append(target)
    codes = []
    for path in passing:
        result = _rt("ask", "--no-rag", "--model", str(path), "--max-tokens", "4", "hi")
        codes.append(result.returncode)
        assert result.returncode in (0, 1) and "Traceback" not in result.stderr, (path.name, result.stderr)
        if result.returncode:
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("rt: error: "), result.stderr
    assert 1 in codes  # seed 12 includes files llama.cpp itself refuses
