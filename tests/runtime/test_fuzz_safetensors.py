"""Mutated headers of a real safetensors file (MiniLM's, from PyPI) through read_header (issue 8 §4).

The short fuzz here runs 300 cases; benchmarks/fuzz_headers.py runs 10,000. Only ConvertError
may come out, each case within the time bound, each message one bounded line.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import pytest

from runtime.errors import ConvertError
from runtime.models.safetensors import read_header
from tests.runtime.fuzz_headers import fuzz_safetensors, safetensors_header


@pytest.fixture(scope="module")
def minilm_safetensors(minilm_path: Path) -> Path:
    return minilm_path / "model.safetensors"


def _write(path: Path, header: bytes, size: int = 0) -> Path:
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(header)) + header)
        fh.truncate(max(size, 8 + len(header)))
    return path


def _refused(path: Path, *words: str) -> str:
    start = time.perf_counter()
    with pytest.raises(ConvertError) as caught:
        read_header(path)
    assert time.perf_counter() - start < 2.0
    message = str(caught.value)
    assert len(message) < 300 and all(word in message for word in words), message
    return message


def test_the_real_header_reads(minilm_safetensors: Path) -> None:
    tensors = read_header(minilm_safetensors)
    assert len(tensors) == 104 and {ref.dtype for ref in tensors.values()} == {"F32", "I64"}


@pytest.mark.parametrize(("body", "words"), [
    (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nested too deeply"),
    (b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
    (b"[" * 100_000 + b"]" * 100_000, "not a JSON object"),
])
def test_deep_nesting(tmp_path: Path, body: bytes, words: str) -> None:
    _refused(_write(tmp_path / "x.safetensors", body), words)


def test_a_header_length_past_the_json(tmp_path: Path, minilm_safetensors: Path) -> None:
    """A header length that takes in the tensor data is refused before 90 MB are decoded."""
    header, size = safetensors_header(minilm_safetensors)
    path = _write(tmp_path / "x.safetensors", header, size)
    with open(path, "r+b") as fh:
        fh.write(struct.pack("<Q", size - 8))
        fh.seek(size - 1)
        fh.write(b"\x01")
    _refused(path, "the header is not a JSON object (a wrong header length?)")


def test_an_integer_of_5000_digits(tmp_path: Path) -> None:
    _refused(_write(tmp_path / "x.safetensors", b'{"a": ' + b"9" * 5000 + b"}"), "not valid JSON")


@pytest.mark.parametrize("dtype", [{}, [], None, 7, "F" * 10_000])
def test_dtype_of_the_wrong_kind(tmp_path: Path, minilm_safetensors: Path, dtype: object) -> None:
    header, size = safetensors_header(minilm_safetensors)
    parsed = json.loads(header)
    name = next(k for k in parsed if k != "__metadata__")
    parsed[name]["dtype"] = dtype
    _refused(_write(tmp_path / "x.safetensors", json.dumps(parsed).encode(), size), "has unknown dtype")


def test_shape_of_100k_dims(tmp_path: Path, minilm_safetensors: Path) -> None:
    header, size = safetensors_header(minilm_safetensors)
    parsed = json.loads(header)
    name = next(k for k in parsed if k != "__metadata__")
    parsed[name]["shape"] = [2**63] * 100_000
    _refused(_write(tmp_path / "x.safetensors", json.dumps(parsed).encode(), size), "has an invalid shape")


@pytest.mark.slow
def test_short_fuzz(tmp_path: Path, minilm_safetensors: Path) -> None:
    report = fuzz_safetensors(minilm_safetensors, 300, 3, tmp_path, bound_s=4.0)
    assert report.tracebacks == [] and report.hangs == 0, report.summary()
    assert report.cases == 300 and report.outcomes["ConvertError"] > 200, report.summary()
