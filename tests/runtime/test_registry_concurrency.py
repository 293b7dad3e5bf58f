"""Concurrent writers of the model registry lose nothing (issue 8, finding 2: 4 processes x 25
``Registry.add()`` once left 49 of 101 entries; parallel ``rt convert --name`` with ``rt models
default`` dropped entries whose .gguf files stayed behind).

Real processes started with ``subprocess`` (no fork), released together by a start file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import runtime.models.registry as registry_module
from runtime.errors import RegistryError
from runtime.models.registry import ModelEntry, Registry

REPO = Path(__file__).resolve().parents[2]

# argv: models folder, start file, writer id, adds. Waits for the start file, then adds.
ADDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from runtime.models.registry import ModelEntry, Registry
    root, start, writer, adds = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    registry = Registry(root)
    while not start.exists():
        time.sleep(0.005)
    for i in range(adds):
        registry.add(ModelEntry(name=f"w{writer}-{i}", file=f"w{writer}-{i}.gguf"), make_default=i % 5 == 0)
""")

# argv: manifest path, stop file. Reads the manifest as fast as it can; prints the reads made.
READER = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    manifest, stop = Path(sys.argv[1]), Path(sys.argv[2])
    reads = 0
    while not stop.exists():
        if manifest.exists():
            data = json.loads(manifest.read_text(encoding="utf-8"))  # a half-written file fails here
            assert isinstance(data["models"], list)
            reads += 1
    print(reads)
""")


def _spawn(code: str, *args: object, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], cwd=REPO, text=True,
                            stderr=subprocess.PIPE, **kwargs)  # type: ignore[call-overload]


def test_parallel_adds_from_four_processes_keep_every_entry(tmp_path: Path) -> None:
    writers, adds = 4, 25
    registry = Registry(tmp_path / "models")
    start, stop = tmp_path / "start", tmp_path / "stop"
    registry.root.mkdir()
    registry.manifest_path.write_text('{"default": null, "models": []}\n', encoding="utf-8")
    reader = _spawn(READER, registry.manifest_path, stop, stdout=subprocess.PIPE)
    children = [_spawn(ADDER, registry.root, start, w, adds) for w in range(writers)]
    time.sleep(1.0)  # every child imported and waiting
    start.touch()
    try:
        for child in children:
            _, err = child.communicate(timeout=240)
            assert child.returncode == 0, err
    finally:
        stop.touch()
        out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err  # the manifest never read as a half-written file
    assert int(out) > 0
    names = [e.name for e in registry.entries()]
    assert sorted(names) == sorted(f"w{w}-{i}" for w in range(writers) for i in range(adds))
    assert registry.default_name in names
    assert sorted(os.listdir(registry.root)) == ["manifest.json", "manifest.json.lock"]  # no temp files left


def _rt(*args: str) -> subprocess.Popen[str]:
    return _spawn("from runtime.cli import main; main()", *args, stdout=subprocess.PIPE)


def test_parallel_rt_convert_rt_models_default_and_rm_keep_every_entry() -> None:
    first = _rt("convert", "--name", "base")
    _, err = first.communicate(timeout=240)
    assert first.returncode == 0, err
    registry = Registry()
    (registry.root / "old.gguf").write_bytes(b"GGUF")
    registry.add(dataclasses.replace(registry.get("base"), name="old", file="old.gguf"))
    names = [f"m{i}" for i in range(4)]
    runs = ([_rt("convert", "--name", name) for name in names] + [_rt("models", "default", "base") for _ in names]
            + [_rt("models", "rm", "old")])
    for run in runs:
        _, err = run.communicate(timeout=240)
        assert run.returncode == 0, err
    data = json.loads(registry.manifest_path.read_text(encoding="utf-8"))
    assert sorted(m["name"] for m in data["models"]) == ["base", *names]
    assert data["default"] == "base"
    assert sorted(p.name for p in registry.root.glob("*.gguf")) == sorted(f"{n}.gguf" for n in ["base", *names])


HOLDER = textwrap.dedent("""
    import sys, time
    from filelock import FileLock
    with FileLock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(60)
""")


def test_a_manifest_locked_too_long_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry()
    registry.root.mkdir(parents=True)
    holder = _spawn(HOLDER, registry.root / "manifest.json.lock", stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        monkeypatch.setattr(registry_module, "MANIFEST_LOCK_WAIT", 0.5)
        with pytest.raises(RegistryError, match=r"manifest .*manifest.json stayed locked .* for 0\.5 s"):
            registry.add(ModelEntry(name="late", file="late.gguf"))
    finally:
        holder.kill()
        holder.communicate()
    registry.add(ModelEntry(name="late", file="late.gguf"))  # the lock died with its holder
    assert [e.name for e in registry.entries()] == ["late"]
