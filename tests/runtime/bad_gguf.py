"""Bad model files for the bad-input tests, made from the real SmolLM2 GGUF and gguf.GGUFWriter.

Each case: a name, a builder ``(folder, smollm2_path) -> path`` and the words its one-line
error must contain (with numbers where the message has them).
"""

from __future__ import annotations

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
