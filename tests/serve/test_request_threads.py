"""`rt serve` re-checks the generation thread count on every request, not only at load.

The served model is the real SmolLM2 in rt's model process; only the per-core CPU sample that
the choice reads (psutil) is scripted, so that "one core busy" and "idle" follow each other
deterministically on a shared machine. The count llama.cpp reports back is asserted.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import psutil
import pytest

from runtime.config import GenerateOptions, LoadOptions, default_threads
from runtime.llm.model import Model
from runtime.serve.host import ModelHost
from runtime.serve.jobs import Result, generate

OPTIONS = GenerateOptions(max_tokens=2)


def _serve_one(host: ModelHost, options: GenerateOptions = OPTIONS) -> Result:
    async def run() -> Result:
        async for kind, value in host.stream(generate("The capital of France is", None, options)):
            if kind == "done":
                return value  # type: ignore[no-any-return]
        raise AssertionError("the job ended without a result")

    return asyncio.run(run())


@pytest.fixture()
def scripted_cpu(monkeypatch: pytest.MonkeyPatch) -> list[list[float]]:
    """Per-core samples the next requests will see, in order; each one is consumed once."""
    samples: list[list[float]] = []
    lock = threading.Lock()

    def cpu_percent(interval: float | None = None, percpu: bool = False) -> list[float]:
        with lock:
            return samples.pop(0)

    monkeypatch.setattr(psutil, "cpu_percent", cpu_percent)
    return samples


def test_each_request_gets_the_threads_the_cores_busy_now_allow(smollm2_path: Path,
                                                                scripted_cpu: list[list[float]]) -> None:
    cores = default_threads()
    if cores < 2:
        pytest.skip("needs 2 cores to tell a busy core from an idle machine")
    n_cpus = psutil.cpu_count() or cores
    load = LoadOptions(n_ctx=256)
    host = ModelHost(lambda: Model(smollm2_path, load), model_id="smollm2", load=load)  # type: ignore[arg-type, return-value]
    try:
        scripted_cpu.extend([[100.0] + [0.0] * (n_cpus - 1), [0.0] * n_cpus, [100.0] * n_cpus])
        busy_one, idle, all_busy = (_serve_one(host) for _ in range(3))
        assert (busy_one.threads, idle.threads, all_busy.threads) == (min(cores, n_cpus - 1), min(cores, n_cpus), 1)
        assert not scripted_cpu  # one sample per request
        assert host.counters.loads == 1  # the same loaded model, re-tuned
    finally:
        host.close()


def test_fixed_threads_are_not_resampled(smollm2_path: Path, scripted_cpu: list[list[float]]) -> None:
    load = LoadOptions(n_ctx=256, threads=1)
    host = ModelHost(lambda: Model(smollm2_path, load), model_id="smollm2", load=load)  # type: ignore[arg-type, return-value]
    try:
        assert _serve_one(host).threads == 1
        assert _serve_one(host).threads == 1
    finally:
        host.close()
