"""Commands that do not embed text must not import torch (it costs seconds on every run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "sentence_transformers", "transformers", "faiss")

# Runs one rt command in a fresh interpreter, then reports which heavy modules it imported.
PROBE = """
import json, sys
from runtime.cli import cli
try:
    cli(sys.argv[1:], prog_name="rt", standalone_mode=False)
except SystemExit:
    pass
print("\\n" + json.dumps({name: name in sys.modules for name in %r}))
""" % (HEAVY,)


def probe(*args: str, torch_embedder: bool = False) -> tuple[dict[str, bool], str]:
    """The heavy modules ``rt ARGS`` imported, and what it printed before them."""
    env = dict(os.environ, RT_LIGHT_EMBEDDER="0") if torch_embedder else None
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).resolve().parents[2], env=env)
    assert done.returncode == 0, done.stderr
    *printed, modules = done.stdout.strip().splitlines()
    return json.loads(modules), "\n".join(printed).strip()


def imported(*args: str) -> dict[str, bool]:
    return probe(*args)[0]


@pytest.mark.parametrize("args", [
    ("--help",), ("models",), ("ask", "--help"), ("chat", "--help"),
], ids=lambda a: " ".join(a))
def test_light_commands_do_not_import_torch(args: tuple[str, ...]) -> None:
    found = imported(*args)
    assert not any(found.values()), found


def test_info_does_not_import_torch(smollm2_path: Path) -> None:
    found = imported("info", str(smollm2_path))
    assert not any(found.values()), found


TORCH = ("torch", "sentence_transformers", "transformers")


def test_search_embeds_the_query_without_torch_and_finds_the_same(index_dir: Path) -> None:
    args = ("search", "how often should the coffee machine be descaled", "--index", str(index_dir), "--json", "-k", "4")
    found, printed = probe(*args)
    assert not any(found[name] for name in TORCH), found
    seen, with_torch = probe(*args, torch_embedder=True)
    # the check can fail: the query embedded as rt did before its numpy embedder imports torch
    assert seen["torch"] and seen["sentence_transformers"], seen
    light, torch = json.loads(printed), json.loads(with_torch)
    assert [h["chunk_id"] for h in light] == [h["chunk_id"] for h in torch] and light
    for mine, theirs in zip(light, torch):
        assert mine["similarity"] == pytest.approx(theirs["similarity"], abs=1e-4)


@pytest.mark.slow  # two rt ask processes with the model
def test_ask_embeds_without_torch_and_cites_the_same(index_dir: Path, smollm2_path: Path) -> None:
    args = ("ask", "How often should the Zorblat 3000 be descaled?", "--index", str(index_dir),
            "--model", str(smollm2_path), "--json", "--max-tokens", "8", "--temperature", "0",
            "--threads", "1")  # the two answers are compared: one count, whatever cores are busy
    found, printed = probe(*args)
    assert not any(found[name] for name in TORCH), found
    _, with_torch = probe(*args, torch_embedder=True)
    light, torch = json.loads(printed.splitlines()[-1]), json.loads(with_torch.splitlines()[-1])
    def cited(sources: list[dict]) -> list[dict]:  # type: ignore[type-arg]
        return [{k: v for k, v in s.items() if k not in ("score", "similarity")} for s in sources]

    assert light["sources"] and cited(light["sources"]) == cited(torch["sources"])
    for mine, theirs in zip(light["sources"], torch["sources"]):
        assert mine["similarity"] == pytest.approx(theirs["similarity"], abs=1e-4)
    assert light["answer"] == torch["answer"]
