"""Environment variables and the folders rt keeps, parsed in one place.

``RT_HOME`` holds everything rt keeps (model registry, default index, caches). Its default is
the platform's per-user data folder: ``%LOCALAPPDATA%\\rt`` on Windows,
``~/Library/Application Support/rt`` on macOS, ``$XDG_DATA_HOME/rt`` (``~/.local/share/rt``)
elsewhere. ``RT_MODELS`` moves the model registry elsewhere (for instance to a checkout's
``models/`` folder); ``RT_INDEX`` moves the default index.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from runtime.errors import ConfigError


def _platform_data_dir() -> Path:
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base)
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def rt_home() -> Path:
    """The folder rt keeps its state in (``RT_HOME`` or the platform default)."""
    value = os.environ.get("RT_HOME")
    return Path(value).expanduser() if value else _platform_data_dir() / "rt"


def models_dir() -> Path:
    """The model registry folder (``RT_MODELS`` or ``RT_HOME/models``)."""
    value = os.environ.get("RT_MODELS")
    return Path(value).expanduser() if value else rt_home() / "models"


def default_index_dir() -> Path:
    """The index used when ``--index`` is not given (``RT_INDEX`` or ``RT_HOME/index``)."""
    value = os.environ.get("RT_INDEX")
    return Path(value).expanduser() if value else rt_home() / "index"


def default_index() -> str | Path:
    """The index used when ``--index`` is not given: ``RT_INDEX`` (a folder or a
    ``postgresql://`` URL, kept as text) or ``RT_HOME/index``."""
    value = os.environ.get("RT_INDEX", "")
    return value if is_index_url(value) else default_index_dir()


def is_index_url(location: object) -> bool:
    """True if ``location`` (an ``--index`` or ``RT_INDEX`` value) names a PostgreSQL database."""
    return isinstance(location, str) and location.lower().startswith(("postgresql://", "postgres://"))


def cache_dir() -> Path:
    """Scratch and cache files (``RT_HOME/cache``)."""
    return rt_home() / "cache"


def debug() -> bool:
    """``RT_DEBUG=1``: show tracebacks and llama.cpp's own log."""
    return os.environ.get("RT_DEBUG", "").strip() not in ("", "0", "false", "no")


def default_model() -> str | None:
    """``RT_MODEL``: a registry name or GGUF path used when ``--model`` is not given."""
    return os.environ.get("RT_MODEL") or None


_SIZE_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
               "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def parse_size(text: str) -> int:
    """``"4G"`` -> 4_000_000_000, ``"512Mi"`` -> 536_870_912, ``"1.5GB"``, ``"1000"`` (bytes).

    Decimal units (K, M, G, T, optionally with B) as disks and ``rt info`` show sizes; binary
    units with ``i`` (Ki, Mi, Gi, Ti, optionally with B). Raises ``ValueError`` otherwise.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([kmgt]i?)?b?\s*", text.lower())
    if match is None:
        raise ValueError(f"{text!r} is not a size (examples: 4G, 512M, 8Gi, 1000000)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2) or ""])


def memory_limit() -> int | None:
    """``RT_MEMORY_LIMIT``: cap on the memory rt plans to use (bytes, or ``4G``/``512M``)."""
    value = os.environ.get("RT_MEMORY_LIMIT", "").strip()
    if not value:
        return None
    try:
        return parse_size(value)
    except ValueError as exc:
        raise ConfigError(f"RT_MEMORY_LIMIT: {exc}", hint="set it to a size such as 4G, or unset it") from None


def llm_url() -> str | None:
    """``RT_LLM_URL``: an OpenAI-compatible server that generates instead of the local model."""
    return os.environ.get("RT_LLM_URL", "").strip() or None


def embed_url() -> str | None:
    """``RT_EMBED_URL``: an OpenAI-compatible server that embeds instead of the local model."""
    return os.environ.get("RT_EMBED_URL", "").strip() or None


def api_key() -> str | None:
    """``RT_API_KEY``: the Bearer token ``rt serve`` requires of its clients."""
    return os.environ.get("RT_API_KEY", "").strip() or None


def remote_api_key() -> str | None:
    """``RT_LLM_API_KEY``: the Bearer token rt sends to ``--llm-url`` and ``--embed-url`` servers."""
    return os.environ.get("RT_LLM_API_KEY", "").strip() or None


def light_embedder(default: bool) -> bool:
    """``RT_LIGHT_EMBEDDER=0``: embed queries with sentence-transformers (torch), as rt did before
    its numpy embedder; ``1``: the numpy one where the model allows; unset: ``default``
    (``IndexOptions.light_embedder``)."""
    value = os.environ.get("RT_LIGHT_EMBEDDER", "").strip().lower()
    if not value:
        return default
    return value not in ("0", "false", "no", "off")


def loop_stop() -> bool:
    """``RT_LOOP_STOP=0``: let generation run past a loop (both of
    :class:`runtime.config.GenerateOptions`' loop stops off) to ``--max-tokens``, for benchmarks
    that time a fixed number of tokens on a model with random weights, which loops at once."""
    return os.environ.get("RT_LOOP_STOP", "").strip().lower() not in ("0", "false", "no", "off")
