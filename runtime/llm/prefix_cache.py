"""The KV state of a prompt prefix, kept on disk between runs (``RT_HOME/cache/prefix``).

Every ``rt ask`` starts a fresh model process whose KV cache is empty, yet the system prompt and
instructions are the same each time. The engine saves the KV state of its first prompt; the
next run loads it, keeps the tokens its prompt shares with it (the fixed prefix, since rt puts
the fixed parts first), saves that shared part, and decodes only the rest.

A file is named by what makes a state valid: the model file (path, size, mtime), the context
settings and llama.cpp's version. The token ids stored with it cover the chat template and the
prompt text. A file that cannot be read, is corrupt or that llama.cpp refuses is ignored with a
debug log, never an error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
from collections.abc import Sequence
from pathlib import Path

from runtime import env
from runtime.config import LoadOptions
from runtime.fsutil import atomic_write_bytes

logger = logging.getLogger(__name__)

MAGIC = b"RTKVPREFIX1\n"
MIN_SHARED_TOKENS = 16  # a shorter shared prefix is not worth loading a state for


def cache_file(model: Path, options: LoadOptions) -> Path:
    """Where the prefix state for ``model`` loaded with ``options`` lives."""
    key = [*model_identity(model), options.n_ctx, options.n_batch, options.kv_type, bool(options.repack),
           llama_version()]
    return env.cache_dir() / "prefix" / (key_digest(key) + ".kv")


def model_identity(model: Path) -> list[str | int]:
    """What names a model file's version in a cache key: its resolved path, size and mtime."""
    stat = model.stat()
    return [str(model.resolve()), stat.st_size, stat.st_mtime_ns]


def key_digest(key: Sequence[object]) -> str:
    """A cache file name (32 hex digits) for a JSON-able ``key``."""
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:32]


def llama_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llama_cpp_python")
    except PackageNotFoundError:
        return "unknown"


def read(path: Path) -> tuple[list[int], bytearray] | None:
    """The tokens and llama.cpp sequence state saved in ``path``; ``None`` if missing or corrupt."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    head = len(MAGIC) + 8
    if len(data) < head or not data.startswith(MAGIC):
        logger.debug("ignoring prefix cache %s: not a prefix cache file", path)
        return None
    count, state_size = struct.unpack_from("<II", data, len(MAGIC))
    if len(data) != head + 4 * count + state_size or count == 0 or state_size == 0:
        logger.debug("ignoring prefix cache %s: %d bytes do not match its header", path, len(data))
        return None
    tokens = list(struct.unpack_from(f"<{count}i", data, head))
    # a bytearray: llama.cpp reads it in place (runtime.llm.native.NativeContext.set_state)
    return tokens, bytearray(memoryview(data)[head + 4 * count:])


def write(path: Path, tokens: list[int], state: bytes | bytearray) -> None:
    """Save ``tokens`` and their sequence ``state`` (atomically; a failure is only logged)."""
    data = MAGIC + struct.pack("<II", len(tokens), len(state)) + struct.pack(f"<{len(tokens)}i", *tokens) + state
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
    except OSError as error:
        logger.debug("could not save the prefix cache %s: %s", path, error)
