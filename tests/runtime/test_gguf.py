"""inspect_gguf on the real models and on every kind of broken file (pure Python, no llama.cpp)."""

from __future__ import annotations

import os
import pickle
import struct
import sys
from pathlib import Path

import pytest

from runtime.errors import ModelFileError, ModelNotFoundError, TruncatedModelError, UnsupportedModelError
from runtime.models.gguf_file import GGUFArray, inspect_gguf
from runtime.models.known_archs import is_known, known_architectures, llama_library
from tests.runtime.bad_gguf import BAD_FILES, LLAMA_REFUSES, copy_prefix, write_hybrid_gguf, write_tiny_gguf

EXPECTED_TYPE = {
    "missing": ModelNotFoundError,
    "directory": ModelFileError,
    "empty": ModelFileError,
    "random-bytes": ModelFileError,
    "truncated": TruncatedModelError,
    "more-tensors": ModelFileError,
    "unknown-arch": UnsupportedModelError,
    **{name: ModelFileError for name in LLAMA_REFUSES},
}


@pytest.fixture(scope="module")
def bad_files(bad_gguf_files: dict[str, Path]) -> dict[str, Path]:
    return bad_gguf_files


def test_smollm2(smollm2_path: Path) -> None:
    info = inspect_gguf(smollm2_path)
    assert (info.architecture, info.quantization, info.version) == ("llama", "Q4_1", 3)
    assert info.n_params == 134_515_008  # ~135M
    assert (info.n_layer, info.n_embd, info.n_head, info.n_head_kv) == (30, 576, 9, 3)
    assert (info.head_dim_k, info.head_dim_v, info.context_length) == (64, 64, 8192)
    assert info.n_tensors == 272 and info.n_vocab == 49152
    assert info.file_size == smollm2_path.stat().st_size
    assert info.tensor_data_bytes == info.file_size - 1_785_664  # data starts after the aligned header
    assert info.chat_template is not None and "<|im_start|>" in info.chat_template
    assert info.metadata["llama.vocab_size"] == 49152
    assert isinstance(info.metadata["tokenizer.ggml.tokens"], GGUFArray)
    assert info.metadata["tokenizer.ggml.tokens"].length == 49152


def test_gemma(gemma_path: Path) -> None:
    info = inspect_gguf(gemma_path)
    assert (info.architecture, info.quantization) == ("gemma3", "Q4_K_M")
    assert 260e6 < info.n_params < 280e6  # ~270M
    assert (info.n_layer, info.n_head, info.n_head_kv, info.head_dim_k, info.head_dim_v) == (18, 4, 1, 256, 256)
    assert info.context_length == 32768 and info.n_vocab == 262144
    assert info.arch_value("attention.sliding_window") == 512


def test_info_pickles(smollm2_path: Path) -> None:
    """The model runs in a child process: what crosses the boundary must pickle."""
    info = inspect_gguf(smollm2_path)
    assert pickle.loads(pickle.dumps(info)) == info


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_file(name: str, bad_files: dict[str, Path]) -> None:
    with pytest.raises(EXPECTED_TYPE[name]) as caught:
        inspect_gguf(bad_files[name])
    message = str(caught.value)
    assert "\n" not in message
    for words in BAD_FILES[name][1]:
        assert words in message


# --- small hand-made corruptions of a tiny, valid GGUF --------------------------------------
@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return write_tiny_gguf(tmp_path / "tiny.gguf")


def patch(path: Path, offset: int, data: bytes) -> Path:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)
    return path


def test_tiny_is_valid(tiny: Path) -> None:
    info = inspect_gguf(tiny)
    assert (info.architecture, info.n_tensors, info.n_params) == ("llama", 2, 256)
    assert info.quantization == "F32"  # no general.file_type: the dominant tensor type
    assert info.chat_template is None and info.name == "tiny llama"


@pytest.mark.parametrize(("version", "words"), [(1, "too old"), (4, "newer than this rt reads"),
                                                (0x03000000, "big-endian")])
def test_versions(tiny: Path, version: int, words: str) -> None:
    patch(tiny, 4, struct.pack("<I", version))
    with pytest.raises(ModelFileError, match=words):
        inspect_gguf(tiny)


@pytest.mark.parametrize(("content", "words"), [
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\n", "Git LFS pointer"),
    (b"PK\x03\x04" + bytes(100), "zip archive"),
    (b"<!DOCTYPE html><html>rate limited</html>", "HTML page"),
])
def test_lookalikes(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match=words):
        inspect_gguf(path)


def test_header_only_magic(tmp_path: Path) -> None:
    path = tmp_path / "short.gguf"
    path.write_bytes(b"GGUF\x03\x00\x00\x00")
    with pytest.raises(TruncatedModelError, match="ends after 8 bytes"):
        inspect_gguf(path)


def test_cut_inside_metadata(tmp_path: Path, smollm2_path: Path) -> None:
    path = copy_prefix(smollm2_path, tmp_path / "cut.gguf", 100_000)  # inside the token list
    words = r"metadata entry 25 of 33 \(tokenizer.ggml.tokens\) is unreadable.*the file ends"
    with pytest.raises(ModelFileError, match=words):
        inspect_gguf(path)


def test_cut_inside_tensor_table(tmp_path: Path, smollm2_path: Path) -> None:
    path = copy_prefix(smollm2_path, tmp_path / "cut.gguf", 1_780_000)
    with pytest.raises(ModelFileError, match=r"the header says 272 tensors, but the file ends after \d+"):
        inspect_gguf(path)


def test_huge_counts_do_not_allocate(tiny: Path) -> None:
    patch(tiny, 16, struct.pack("<Q", 2**62))  # n_kv
    with pytest.raises(ModelFileError, match=f"{2**62} metadata entries, more than a file of"):
        inspect_gguf(tiny)


def test_huge_string_length(tiny: Path) -> None:
    patch(tiny, 24, struct.pack("<Q", 2**60))  # length of the first key
    with pytest.raises(ModelFileError, match="metadata entry 1 of .* a key of 1152921504606846976 bytes"):
        inspect_gguf(tiny)


def _tensor_entry(path: Path, name: bytes = b"blk.0.t0.weight") -> int:
    """File offset just after the tensor's name in the tensor table."""
    return path.read_bytes().index(name) + len(name)


def test_unknown_tensor_type(tiny: Path) -> None:
    patch(tiny, _tensor_entry(tiny) + 4 + 16, struct.pack("<I", 99))
    with pytest.raises(UnsupportedModelError, match="tensor 'blk.0.t0.weight' has type id 99"):
        inspect_gguf(tiny)


def test_too_many_dims(tiny: Path) -> None:
    patch(tiny, _tensor_entry(tiny), struct.pack("<I", 9))
    with pytest.raises(ModelFileError, match="claims 9 dimensions"):
        inspect_gguf(tiny)


def test_tensor_offset_past_the_end(tiny: Path) -> None:
    patch(tiny, _tensor_entry(tiny) + 4 + 16 + 4, struct.pack("<Q", 1 << 40))
    size = tiny.stat().st_size
    words = rf"tensor data ends at 10995116\d{{5}} bytes but the file has {size}"
    with pytest.raises(TruncatedModelError, match=words):
        inspect_gguf(tiny)


def test_misaligned_offset(tiny: Path) -> None:
    patch(tiny, _tensor_entry(tiny) + 4 + 16 + 4, struct.pack("<Q", 4))
    with pytest.raises(ModelFileError, match="starts at offset 4, not a multiple of the alignment 32"):
        inspect_gguf(tiny)


def test_duplicate_tensor_name(tiny: Path) -> None:
    patch(tiny, _tensor_entry(tiny, b"blk.0.t1.weight") - 15, b"blk.0.t0.weight")
    with pytest.raises(ModelFileError, match="appears twice"):
        inspect_gguf(tiny)


def test_no_architecture(tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "x.gguf")
    data = path.read_bytes()
    path.write_bytes(data.replace(b"general.architecture", b"general.architectur_"))
    with pytest.raises(ModelFileError, match="no general.architecture"):
        inspect_gguf(path)


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root (or Windows) reads any file")
def test_unreadable(tiny: Path) -> None:
    tiny.chmod(0)
    with pytest.raises(ModelFileError, match="cannot read"):
        inspect_gguf(tiny)


def test_per_layer_kv_heads(tmp_path: Path) -> None:
    info = inspect_gguf(write_hybrid_gguf(tmp_path / "hybrid.gguf"))
    assert info.n_head_kv == 2 and info.kv_heads_per_layer() == (2, 0, 1)
    assert info.quantization == "Q8_0" and info.head_dim_k == 16


def test_known_architectures_come_from_the_bundled_library() -> None:
    pytest.importorskip("llama_cpp")  # find_spec only; the test never loads the library
    assert llama_library() is not None
    assert {"llama", "gemma3", "qwen2", "bert"} <= set(known_architectures())
    assert not is_known("notanarch") and not is_known("")


def test_deeply_nested_arrays(tmp_path: Path) -> None:
    key = b"x"
    nested = struct.pack("<IQ", 9, 1) * 50 + struct.pack("<IQ", 4, 0)  # array of array of ... of u32
    body = struct.pack("<Q", len(key)) + key + struct.pack("<I", 9) + nested
    path = tmp_path / "nested.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + body + bytes(64))
    with pytest.raises(ModelFileError, match=r"metadata entry 1 of 1 \(x\) is unreadable: arrays nested 4 deep"):
        inspect_gguf(path)


def test_vision_projector(tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "mmproj.gguf", "clip")
    with pytest.raises(UnsupportedModelError, match="vision projector"):
        inspect_gguf(path)
