"""The model registry: GGUF files in the models folder and a JSON manifest describing them.

The manifest (``manifest.json``) records, per model: name, file, source, architecture,
parameter count, quantization, size, sha256 and creation time, plus which model is the
default. It is rewritten atomically (temporary file, then rename), and every read-modify-write
holds ``manifest.json.lock`` (``filelock``), so concurrent ``rt convert``, ``rt models default``
and ``rt models rm`` never lose each other's entries. :func:`resolve_model` turns what a person typed
(``--model NAME|PATH`` or nothing) into a GGUF path.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from runtime import env
from runtime.errors import ConfigError, ModelNotFoundError, RegistryError
from runtime.fsutil import atomic_write_bytes, check_path_length, retry_in_use

MANIFEST = "manifest.json"
# Updates hold the lock for milliseconds (a JSON file of a few KB); only a stuck process makes
# another wait this long.
MANIFEST_LOCK_WAIT = 60.0
# Windows' device names: a file named ``CON.gguf`` or ``nul.q4.gguf`` is the device, not a file.
RESERVED_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL", *(f"{port}{n}" for port in ("COM", "LPT") for n in range(1, 10))})


@dataclass(frozen=True)
class ModelEntry:
    """One registered model. ``file`` is relative to the models folder."""

    name: str
    file: str
    source: str = ""
    architecture: str = ""
    parameters: int = 0
    quantization: str = ""
    size: int = 0
    sha256: str = ""
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Stream a file through sha256 (never reads it whole)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def check_model_name(name: str) -> str:
    """Refuse a name that Windows reserves for a device (``CON``, ``com1.q4``, any case)."""
    device = name.split(".")[0].rstrip(" ").upper()
    if device in RESERVED_NAMES:
        raise ConfigError(
            f"{name!r} cannot be a model name: {device} is a device name on Windows, not a file",
            hint=f"choose another name (e.g. {name.split('.')[0]}-model)",
        )
    return name


def _same_but_case(a: str, b: str) -> bool:
    return a != b and a.casefold() == b.casefold()


class Registry:
    """The models folder and its manifest."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else env.models_dir()

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    def _load(self) -> dict:
        path = self.manifest_path
        if not path.exists():
            return {"default": None, "models": []}
        try:
            # On Windows a read that meets another process's replace is refused for a moment.
            data = json.loads(retry_in_use(lambda: path.read_text(encoding="utf-8"), str(path)))
            if not isinstance(data.get("models"), list):
                raise ValueError("no 'models' list")
            return data
        except (ValueError, OSError) as exc:
            raise RegistryError(
                f"the model manifest {path} is unreadable ({exc})",
                hint="fix or delete it; the GGUF files beside it are untouched",
            ) from exc

    @contextlib.contextmanager
    def _updating(self) -> Iterator[dict]:
        """The manifest, locked against other writers; saved when the block ends without error."""
        from filelock import FileLock, Timeout

        check_path_length(self.manifest_path)  # before the folder: Windows' MAX_PATH, named fix
        self.root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.root / (MANIFEST + ".lock"), timeout=MANIFEST_LOCK_WAIT, thread_local=False)
        try:
            lock.acquire()
        except Timeout:
            raise RegistryError(
                f"the model manifest {self.manifest_path} stayed locked by another rt process "
                f"for {MANIFEST_LOCK_WAIT:g} s",
                hint="let the other `rt convert` or `rt models` finish, then try again",
            ) from None
        try:
            data = self._load()
            yield data
            self._save(data)
        finally:
            lock.release()

    def _save(self, data: dict) -> None:
        # A manifest that cannot replace the old one is dropped, not kept beside it (the
        # default): the next update rewrites it from the old one; a stale copy would mislead.
        atomic_write_bytes(self.manifest_path, (json.dumps(data, indent=2) + "\n").encode("utf-8"))

    def entries(self) -> list[ModelEntry]:
        """Every registered model, in the order they were added."""
        known = set(ModelEntry.__dataclass_fields__)
        return [ModelEntry(**{k: v for k, v in m.items() if k in known}) for m in self._load()["models"]]

    @property
    def default_name(self) -> str | None:
        data = self._load()
        names = [m["name"] for m in data["models"]]
        if data.get("default") in names:
            return data["default"]
        return names[0] if names else None

    def get(self, name: str) -> ModelEntry:
        entries = self.entries()
        for entry in entries:
            if entry.name == name:
                return entry
        known = ", ".join(e.name for e in entries) or "none"
        near = [e.name for e in entries if _same_but_case(e.name, name)]
        raise ModelNotFoundError(
            f"no model named {name!r} in {self.root} (registered: {known})",
            hint=f"names are case-sensitive: did you mean {near[0]!r}?" if near
            else "see `rt models`, or get one with `rt convert`",
        )

    def check_new_name(self, name: str) -> str:
        """Refuse, before any work, a name Windows reserves or one that differs from a registered
        name only in case: on a case-insensitive disk (Windows, macOS) both would be one file."""
        check_model_name(name)
        self._refuse_case_twin(name, self._load()["models"])
        return name

    def _refuse_case_twin(self, name: str, models: list[dict]) -> None:
        for model in models:
            if _same_but_case(model["name"], name):
                raise RegistryError(
                    f"{name!r} differs from the registered model {model['name']!r} only in case; "
                    f"on Windows and macOS both would be the file {model['file']}",
                    hint=f"use {model['name']!r} to replace that model, or choose another name",
                )

    def path_of(self, entry: ModelEntry) -> Path:
        return self.root / entry.file

    def add(self, entry: ModelEntry, *, make_default: bool = False) -> ModelEntry:
        """Register (or replace) ``entry``; the first model registered becomes the default."""
        check_model_name(entry.name)
        with self._updating() as data:
            self._refuse_case_twin(entry.name, data["models"])
            data["models"] = [m for m in data["models"] if m["name"] != entry.name] + [asdict(entry)]
            if make_default or not data.get("default"):
                data["default"] = entry.name
        return entry

    def set_default(self, name: str) -> None:
        with self._updating() as data:
            if name not in (m["name"] for m in data["models"]):
                self.get(name)  # raises ModelNotFoundError, listing the registered names
            data["default"] = name

    def remove(self, name: str, *, delete_file: bool = True) -> ModelEntry:
        """Unregister ``name`` and delete its file (unless another entry shares it)."""
        with self._updating() as data:
            entry = self.get(name)
            data["models"] = [m for m in data["models"] if m["name"] != name]
            if data.get("default") == name:
                data["default"] = data["models"][0]["name"] if data["models"] else None
            # Case-insensitively: on Windows `mistral.gguf` is `Mistral.gguf`, another entry's file.
            shared = any(m["file"].casefold() == entry.file.casefold() for m in data["models"])
            path = self.path_of(entry)
            if delete_file and not shared and path.exists() and path.resolve().parent == self.root.resolve():
                try:  # before the manifest changes: a file that stays must stay registered
                    retry_in_use(lambda: os.remove(path), str(path))
                except OSError as exc:  # on Windows, a model another process has loaded
                    raise RegistryError(
                        f"cannot delete {path}: {exc.strerror or exc}; {name!r} stays registered",
                        hint="close the programs using it (a running `rt ask`?) and try again, "
                             "or unregister it only with --keep-file",
                    ) from exc
        return entry


def _looks_like_path(spec: str) -> bool:
    return spec.lower().endswith(".gguf") or os.sep in spec or "/" in spec or Path(spec).exists()


def resolve_model(spec: str | Path | None = None, registry: Registry | None = None) -> Path:
    """Turn ``--model`` (a registry name, a GGUF path, or ``None``) into a GGUF path.

    ``None`` means ``RT_MODEL``, else the registry's default, else the embedded SmolLM2 model.
    A path is returned as given (validation happens when the file is opened).
    """
    registry = registry or Registry()
    spec = str(spec) if spec is not None else env.default_model()
    if spec is None:
        name = registry.default_name
        if name is None:
            from runtime.models.embedded import default_model_path

            return default_model_path()
        spec = name
    if _looks_like_path(spec):
        path = Path(spec).expanduser()
        if not path.exists():
            raise ModelNotFoundError(
                f"model file {path} does not exist",
                hint="check the path, see `rt models`, or get a model with `rt convert`",
            )
        return path
    entry = registry.get(spec)
    path = registry.path_of(entry)
    if not path.exists():
        raise ModelNotFoundError(
            f"model {spec!r} is registered but its file {path} is missing",
            hint=f"run `rt models rm {spec}` and convert it again with `rt convert`",
        )
    return path
