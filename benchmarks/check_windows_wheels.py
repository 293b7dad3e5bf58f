"""Which of rt's dependencies have no wheel for Windows (win_amd64) on CPython 3.10-3.13.

    python benchmarks/check_windows_wheels.py [--python 3.10,3.11,3.12,3.13] [--extra test] [--deps]
                                              [--index-url URL] [--extra-index-url URL] [--jobs 8]

A person on Windows gets whatever pip can install without a compiler; anything without a wheel
is built from source there, which needs the MSVC build tools (llama-cpp-python: also CMake). This
asks pip itself, without installing anything: for every runtime requirement in pyproject.toml
(and those of the ``--extra`` extras, ``rt[...]`` self-references expanded), and every Python
version, ``pip install --dry-run --no-deps --only-binary :all: --platform win_amd64
--python-version 3.x`` says whether a wheel satisfies it. Then, per Python version, all the
requirements that have one are resolved together with their dependencies (``--deps``), which
names a dependency further down that has none (pip evaluates the markers of those dependencies
against the interpreter running this script, a limit of pip's ``--python-version``).

Prints one row per requirement and one column per Python version: the wheel's version, or
``NO WHEEL``. Exits 1 if any requirement has no wheel (expected today: llama-cpp-python, which
publishes only an sdist on PyPI, and rapidocr-onnxruntime, which requires Python < 3.13).
Needs the package index (PyPI, or ``--index-url``); takes a few minutes.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PYTHONS = ("3.10", "3.11", "3.12", "3.13")
NO_WHEEL = "NO WHEEL"
NOT_NEEDED = "-"  # its marker leaves it out on this Python
PIP_TIMEOUT = 900  # seconds for one pip resolution (--deps on a slow link takes minutes)


def _pyproject() -> dict:  # type: ignore[type-arg]
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def requirements(extras: list[str]) -> list[str]:
    """The runtime requirements and those of ``extras``, ``rt[x]`` expanded, without duplicates."""
    project = _pyproject()["project"]
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    found: list[str] = []
    seen_extras: set[str] = set()

    def add(spec: str) -> None:
        req = Requirement(spec)
        if req.name == project["name"]:
            for extra in sorted(req.extras):
                add_extra(extra)
        elif spec not in found:
            found.append(spec)

    def add_extra(extra: str) -> None:
        if extra in seen_extras:
            return
        seen_extras.add(extra)
        for spec in optional[extra]:
            add(spec)

    for spec in project["dependencies"]:
        add(spec)
    for extra in extras:
        add_extra(extra)
    return found


def _pip(specs: list[str], python: str, *, deps: bool, index: list[str], work: Path) -> tuple[bool, str, dict]:  # type: ignore[type-arg]
    """Run pip's dry-run resolution for win_amd64; (ok, pip's last error line, its --report)."""
    report = Path(tempfile.mkstemp(suffix=".json", dir=work)[1])
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
               "--disable-pip-version-check", "--only-binary", ":all:", "--platform", "win_amd64",
               "--python-version", python, "--implementation", "cp", "--target", str(work / "target"),
               "--report", str(report), *index, *([] if deps else ["--no-deps"]), *specs]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=PIP_TIMEOUT)
    except subprocess.TimeoutExpired:
        return False, f"pip took more than {PIP_TIMEOUT} s", {}
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR:")]
    data = json.loads(report.read_text(encoding="utf-8")) if done.returncode == 0 and report.stat().st_size else {}
    return done.returncode == 0, (errors[-1] if errors else done.stderr.strip()[-300:]), data


def windows_spec(spec: str, python: str) -> str | None:
    """``spec`` without its environment marker, or ``None`` when the marker excludes Windows on
    ``python``: pip evaluates markers against the interpreter running it, not ``--python-version``."""
    req = Requirement(spec)
    if req.marker is None:
        return spec
    environment = {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": "win32",
                   "platform_system": "Windows", "os_name": "nt", "platform_machine": "AMD64",
                   "implementation_name": "cpython", "platform_python_implementation": "CPython"}
    if not req.marker.evaluate(environment):
        return None
    req.marker = None
    return str(req)


def _version_of(data: dict) -> str:  # type: ignore[type-arg]
    installs = data.get("install", [])
    return installs[0]["metadata"]["version"] if installs else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=",".join(PYTHONS), help="Python versions, comma-separated.")
    parser.add_argument("--extra", action="append", default=None,
                        help="Also check this extra's requirements (repeatable; default: test).")
    parser.add_argument("--index-url", default=None, help="Package index instead of pip's configured one.")
    parser.add_argument("--extra-index-url", action="append", default=[],
                        help="Another index, e.g. llama-cpp-python's own CPU wheel index (repeatable).")
    parser.add_argument("--jobs", type=int, default=8, help="pip processes at once (the work is network-bound).")
    parser.add_argument("--deps", action="store_true",
                        help="Also resolve each Python's requirements together with their dependencies (slow: "
                             "pip may download large wheels, torch's among them, to read their metadata).")
    args = parser.parse_args()
    pythons = [p.strip() for p in args.python.split(",") if p.strip()]
    specs = requirements(["test"] if args.extra is None else args.extra)
    index = (["--index-url", args.index_url] if args.index_url else []) + [
        arg for url in args.extra_index_url for arg in ("--extra-index-url", url)]

    with tempfile.TemporaryDirectory(prefix="rt-wheels-") as tmp:
        work = Path(tmp)
        table: dict[tuple[str, str], str] = {}
        cells = []
        for spec in specs:
            for python in pythons:
                if windows_spec(spec, python) is None:
                    table[(spec, python)] = NOT_NEEDED
                else:
                    cells.append((spec, python))
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            results = list(pool.map(
                lambda cell: _pip([str(windows_spec(*cell))], cell[1], deps=False, index=index, work=work), cells))
        table.update({cell: (_version_of(data) if ok else NO_WHEEL) for cell, (ok, _, data) in zip(cells, results)})
        missing = [f"{spec} (" + ", ".join(f"cp{p.replace('.', '')}" for p in pythons
                                           if table[(spec, p)] == NO_WHEEL) + ")"
                   for spec in specs if any(table[(spec, p)] == NO_WHEEL for p in pythons)]

        width = max(len(spec) for spec in specs)
        print(f"{'requirement':<{width}}  " + "  ".join(f"cp{p.replace('.', ''):<12}" for p in pythons))
        for spec in specs:
            print(f"{spec:<{width}}  " + "  ".join(f"{table[(spec, p)]:<14}" for p in pythons))

        if not args.deps:
            pythons = []
        else:
            print("\nwith their dependencies (the requirements above that have a wheel, resolved together):")
        for python in pythons:
            have = [str(windows_spec(spec, python)) for spec in specs
                    if table[(spec, python)] not in (NO_WHEEL, NOT_NEEDED)]
            ok, error, data = _pip(have, python, deps=True, index=index, work=work)
            if ok:
                print(f"  cp{python.replace('.', '')}: {len(data.get('install', []))} wheels, all found")
            else:
                named = re.search(r"(?:found for|requirement) (\S+)", error)
                print(f"  cp{python.replace('.', '')}: NO WHEEL for {named.group(1) if named else '?'} ({error})")
                missing.append(f"{named.group(1) if named else '?'} (a dependency, cp{python})")

    if missing:
        print("\nno win_amd64 wheel: " + "; ".join(dict.fromkeys(missing)))
        return 1
    print("\nevery requirement has a win_amd64 wheel")
    return 0


if __name__ == "__main__":
    sys.exit(main())
