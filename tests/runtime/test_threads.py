"""Generation threads leave out the cores another process keeps busy; --threads overrides."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from runtime.config import LoadOptions, default_threads
from runtime.llm.llama_engine import LlamaEngine
from runtime.llm.threads import generation_threads


def test_busy_cores_are_left_out_of_generation() -> None:
    assert generation_threads(2, [100.0, 3.0]) == 1
    assert generation_threads(2, [5.0, 3.0]) == 2
    assert generation_threads(2, [100.0, 100.0]) == 1
    assert generation_threads(4, []) == 4


def test_a_busy_core_lowers_the_default_generation_threads_not_explicit_ones(smollm2_path: Path) -> None:
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(default_threads())]
    try:
        time.sleep(0.5)
        with LlamaEngine(smollm2_path, LoadOptions(n_ctx=256)) as engine:
            assert engine.n_threads < default_threads() or default_threads() == 1
        with LlamaEngine(smollm2_path, LoadOptions(n_ctx=256, threads=2)) as engine:
            assert engine.n_threads == 2
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
