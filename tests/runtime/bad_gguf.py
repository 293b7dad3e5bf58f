"""Bad model files for the bad-input tests, made from the real SmolLM2 GGUF and gguf.GGUFWriter.

Each case: a name, a builder ``(folder, smollm2_path) -> path`` and the words its one-line
error must contain (with numbers where the message has them).
"""

from __future__ import annotations

import functools
import os
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np

N_TENSORS_OFFSET = 8  # magic (4) + version (4), then u64 tensor count


def copy_prefix(source: Path, target: Path, n_bytes: int) -> Path:
    """Copy the first ``n_bytes`` of ``source`` (streamed, 1 MiB at a time)."""
    with open(source, "rb") as src, open(target, "wb") as dst:
        left = n_bytes
        while left > 0:
            block = src.read(min(left, 1 << 20))
            if not block:
                break
            dst.write(block)
            left -= len(block)
    return target


def write_tiny_gguf(path: Path, arch: str = "llama", *, n_tensors: int = 2) -> Path:
    """A tiny but well-formed GGUF written with gguf.GGUFWriter (f32 tensors of 32 values)."""
    writer = gguf.GGUFWriter(path, arch)
    writer.add_name(f"tiny {arch}")
    writer.add_context_length(64)
    writer.add_embedding_length(32)
    writer.add_block_count(1)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    for index in range(n_tensors):
        writer.add_tensor(f"blk.0.t{index}.weight", np.arange(32 * 4, dtype=np.float32).reshape(4, 32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _missing(folder: Path, smollm2: Path) -> Path:
    return folder / "no-such-model.gguf"


def _directory(folder: Path, smollm2: Path) -> Path:
    target = folder / "a-folder.gguf"
    target.mkdir(exist_ok=True)
    return target


def _empty(folder: Path, smollm2: Path) -> Path:
    target = folder / "empty.gguf"
    target.write_bytes(b"")
    return target


def _random_bytes(folder: Path, smollm2: Path) -> Path:
    target = folder / "random.gguf"
    target.write_bytes(bytes.fromhex("deadbeef0badf00d") + os.urandom(4096))
    return target


def _truncated(folder: Path, smollm2: Path) -> Path:
    return copy_prefix(smollm2, folder / "truncated.gguf", int(smollm2.stat().st_size * 0.6))


def _more_tensors(folder: Path, smollm2: Path) -> Path:
    target = folder / "more-tensors.gguf"
    shutil.copyfile(smollm2, target)
    with open(target, "r+b") as fh:
        fh.seek(N_TENSORS_OFFSET)
        (real,) = struct.unpack("<Q", fh.read(8))
        fh.seek(N_TENSORS_OFFSET)
        fh.write(struct.pack("<Q", real + 728))  # 272 -> 1000
    return target


def _unknown_arch(folder: Path, smollm2: Path) -> Path:
    return write_tiny_gguf(folder / "notanarch.gguf", "notanarch")


@functools.cache
def _parsed(smollm2: Path) -> gguf.GGUFReader:
    """SmolLM2's GGUF parsed once, copy-on-write: gguf-py takes ~4 s a parse (49,152 vocabulary
    strings), which each patched copy used to pay."""
    return gguf.GGUFReader(smollm2, "c")


def _patched(folder: Path, smollm2: Path, name: str,
             patch: Callable[[gguf.GGUFReader, dict[str, gguf.ReaderTensor]], None]) -> Path:
    """A copy of SmolLM2 with ``patch`` applied to its header (the parts gguf's reader maps).

    The patch edits the parsed file's copy-on-write pages in memory; the edited header is
    written over the copy's, and the pages are put back for the next patch."""
    target = folder / f"{name}.gguf"
    shutil.copyfile(smollm2, target)
    reader = _parsed(smollm2)
    header = reader.data[:reader.data_offset]
    original = header.copy()
    try:
        patch(reader, {t.name: t for t in reader.tensors})
        with open(target, "r+b") as fh:
            fh.write(header.tobytes())
    finally:
        header[:] = original
    return target


# The tensor table entry's parts (gguf.ReaderTensor.field.parts): name length, name, n_dims, dims, type, offset.
_DIMS, _TYPE, _OFFSET = 3, 4, 5


def _overlapping(folder: Path, smollm2: Path) -> Path:
    def patch(reader: gguf.GGUFReader, tensors: dict[str, gguf.ReaderTensor]) -> None:
        down = tensors["blk.0.ffn_down.weight"].field.parts[_OFFSET][0]
        tensors["blk.0.ffn_gate.weight"].field.parts[_OFFSET][0] = down  # same size and type: shared data
    return _patched(folder, smollm2, "overlapping", patch)


def _embedding_shape(folder: Path, smollm2: Path) -> Path:
    def patch(reader: gguf.GGUFReader, tensors: dict[str, gguf.ReaderTensor]) -> None:
        tensors["token_embd.weight"].field.parts[_DIMS][:] = [49152, 576]  # transposed: same size
    return _patched(folder, smollm2, "embedding-shape", patch)


def _partial_block(folder: Path, smollm2: Path) -> Path:
    def patch(reader: gguf.GGUFReader, tensors: dict[str, gguf.ReaderTensor]) -> None:
        tensors["blk.0.ffn_down.weight"].field.parts[_DIMS][:] = [48, 18432]  # 48 % 32: a Q4_1 block split
    return _patched(folder, smollm2, "partial-block", patch)


def _zero_heads(folder: Path, smollm2: Path) -> Path:
    def patch(reader: gguf.GGUFReader, tensors: dict[str, gguf.ReaderTensor]) -> None:
        reader.fields["llama.attention.head_count"].parts[-1][0] = 0
    return _patched(folder, smollm2, "zero-heads", patch)


def _zero_kv_heads(folder: Path, smollm2: Path) -> Path:
    def patch(reader: gguf.GGUFReader, tensors: dict[str, gguf.ReaderTensor]) -> None:
        reader.fields["llama.attention.head_count_kv"].parts[-1][0] = 0  # yet every layer has attn_k/attn_v
    return _patched(folder, smollm2, "zero-kv-heads", patch)


def _type_size(folder: Path, smollm2: Path) -> Path:
    def patch(reader: gguf.GGUFReader, tensors: dict[str, gguf.ReaderTensor]) -> None:
        # Q4_1 data declared Q4_0: 18 bytes a block instead of 20, so the data size no longer matches
        tensors["blk.0.ffn_down.weight"].field.parts[_TYPE][0] = int(gguf.GGMLQuantizationType.Q4_0)
    return _patched(folder, smollm2, "type-size", patch)


# Files llama.cpp refuses to load that rt info used to call fine (issue 21): name -> (builder, words).
LLAMA_REFUSES: dict[str, tuple[Callable[[Path, Path], Path], tuple[str, ...]]] = {
    "overlapping": (_overlapping, ("overlapping.gguf", "tensor 'blk.0.ffn_gate.weight' at data offset 30083328 "
                                   "overlaps the one before it ('blk.0.ffn_down.weight', Q4_1 1536x576",
                                   "llama.cpp cannot load it")),
    "embedding-shape": (_embedding_shape, ("embedding-shape.gguf", "tensor 'token_embd.weight' has shape 49152x576, "
                                           "but the header's counts make it 576x49152 for llama")),
    "partial-block": (_partial_block, ("partial-block.gguf", "tensor 'blk.0.ffn_down.weight' has a row of 48 values, "
                                       "not a multiple of Q4_1's block of 32")),
    "zero-heads": (_zero_heads, ("zero-heads.gguf", "llama.attention.head_count is 0 where the model has attention "
                                 "('blk.0.attn_q.weight')")),
    "zero-kv-heads": (_zero_kv_heads, ("zero-kv-heads.gguf", "tensor 'blk.0.attn_k.weight' has shape 576x192, "
                                       "but the header's counts make it 576x0 for llama")),
    "type-size": (_type_size, ("type-size.gguf", "tensor 'blk.0.ffn_gate.weight' at data offset 30636288 does not "
                               "follow the one before it ('blk.0.ffn_down.weight', Q4_0 1536x576: 497664 bytes")),
}

_LOAD_WITH_LLAMA_CPP = """
import ctypes, sys
import llama_cpp as L
lines = []
def log(level, text, user):
    lines.append((text or b"").decode("utf-8", "replace"))
callback = L.llama_log_callback(log)
L.llama_log_set(callback, ctypes.c_void_p(0))
L.llama_backend_init()
params = L.llama_model_default_params()
model = L.llama_model_load_from_file(sys.argv[1].encode(), params)
if model:
    L.llama_model_free(model)
    sys.exit(0)
print(" ".join(line.strip() for line in lines if "error" in line or "failed" in line))
sys.exit(3)
"""


def llama_cpp_load(path: Path) -> tuple[int, str]:
    """Load ``path`` with the real llama.cpp in a child process, rt's checks bypassed.

    Returns the exit status (0: loaded, 3: refused, other: crashed) and llama.cpp's error lines.
    """
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _LOAD_WITH_LLAMA_CPP, str(path)], capture_output=True, text=True,
                          timeout=300)
    return done.returncode, done.stdout.strip()


# name -> (builder, words the one-line error must contain)
BAD_FILES: dict[str, tuple[Callable[[Path, Path], Path], tuple[str, ...]]] = {
    "missing": (_missing, ("no-such-model.gguf", "does not exist")),
    "directory": (_directory, ("a-folder.gguf", "is a folder")),
    "empty": (_empty, ("empty.gguf", "is empty (0 bytes)")),
    "random-bytes": (_random_bytes, ("random.gguf", "not a GGUF file", "0xdeadbeef0badf00d")),
    "truncated": (_truncated, ("truncated.gguf", "tensor data ends at 98362432 bytes but the file has 59017459",
                               "download it again")),
    "more-tensors": (_more_tensors, ("more-tensors.gguf", "the header says 1000 tensors",
                                     "only 272 tensor entries could be read")),
    "unknown-arch": (_unknown_arch, ("notanarch.gguf", "architecture 'notanarch' is not supported")),
    **LLAMA_REFUSES,
}


def make_all(folder: Path, smollm2: Path) -> dict[str, Path]:
    """Build every bad file under ``folder``; name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    return {name: build(folder, smollm2) for name, (build, _) in BAD_FILES.items()}


def write_hybrid_gguf(path: Path) -> Path:
    """A 3-layer llama GGUF whose layers have 2, 0 and 1 KV heads (head size 16, Q8_0 file type),
    as a hybrid model with an attention-free layer declares them."""
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_block_count(3)
    writer.add_embedding_length(64)
    writer.add_head_count(4)  # head size 16
    writer.add_head_count_kv([2, 0, 1])  # layer 1 has no attention, so no KV cache
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    writer.add_tensor("token_embd.weight", np.zeros((2, 64), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
