"""What one more row of a prompt-lookup verification batch costs, measured once per model and machine.

The drafter's cost model (:mod:`runtime.llm.lookup`) says a decode of ``1 + k`` tokens costs
``1 + row_cost * k`` single-token decodes. That cost depends on the model and the machine: one
more row costs 0.58 of a decode on SmolLM2-135M and 0.41 on Gemma 3 270M (compute-bound: the
output layer is computed for every row), but 0.14-0.20 on a 7B (memory-bound: the weights are
read once per batch, whatever its size). One constant drafts too much on the first or too little
on the last, so when ``GenerateOptions.lookup_row_cost`` is ``None`` the model process measures
it (:func:`measure`, driven by :meth:`runtime.llm.llama_engine.LlamaEngine.row_cost`) and keeps it
in ``RT_HOME/cache/lookup``.

It is measured on one thread and timed by that thread's CPU clock. The figure is kept for good,
so it must not depend on what else the machine was doing at that moment: on the shared 2-core
machine rt is developed on, the least wall-clock time at 2 threads gave SmolLM2 0.47 once and
2.0 the next time, while one thread's CPU time gave 0.61-0.63 over three loads, Gemma 0.64-0.65
(it counts what the decode computes, and the
cycles it stalls on memory, which is what a 7B's single decode is bound by, but not the time
other processes hold the core). A verification batch runs on the prompt threads and a single
decode on the generation threads; with more threads a compute-bound batch gains at least as much
as a single decode, so the one-thread figure is, if anything, high, and drafts err short.

A file is named by what the figure depends on: the model file (path, size, mtime), the rows
measured, the KV type, repacking, llama.cpp's version and the machine (CPU count, architecture);
not the thread counts, since it is measured on one. The key is stored in the file too; a file
that cannot be read, is corrupt or holds another key is ignored with a debug log and measured
again. The drafter only ever sees the stored figure, so its choices stay a function of the tokens.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runtime import env
from runtime.config import LoadOptions
from runtime.fsutil import atomic_write_bytes
from runtime.llm.prefix_cache import key_digest, llama_version, model_identity

if TYPE_CHECKING:  # the native layer loads llama.cpp; reading a cached figure does not need it
    from runtime.llm.kv_sequence import KVSequence

logger = logging.getLogger(__name__)

FORMAT = 1
CONTEXT_TOKENS = 32  # decoded first, so both sizes are timed after some context
MIN_REPEATS = 2  # timed pairs (1 token, 1 + rows tokens) at least
MAX_REPEATS = 5  # and at most
BUDGET_SECONDS = 1.0  # no new pair once this is spent (after MIN_REPEATS)
LOWEST, HIGHEST = 0.02, 2.0  # a figure outside this is noise; it is clamped into it
FALLBACK = 0.5  # the small models' figure, when the context has no room left to measure


@dataclass(frozen=True)
class Measurement:
    """The least CPU seconds of one decode of 1 token and of ``1 + rows`` tokens (logits for
    every row), and how long measuring took in all (wall)."""

    single: float
    batch: float
    rows: int
    repeats: int
    seconds: float

    @property
    def row_cost(self) -> float:
        """One more row of a batch, in single-token decodes."""
        cost = (self.batch / self.single - 1.0) / self.rows if self.single > 0 and self.rows > 0 else HIGHEST
        return min(HIGHEST, max(LOWEST, cost))


def measure(decode: Callable[[int], float], rows: int) -> Measurement:
    """Time ``decode(n)`` (decode ``n`` tokens after a fixed context, return the seconds it took,
    leave the context as it was) for 1 and ``1 + rows`` tokens, interleaved; keep the least.

    One untimed pair first: the first batch grows llama.cpp's output buffer. Then
    :data:`MIN_REPEATS` to :data:`MAX_REPEATS` pairs, no new one after :data:`BUDGET_SECONDS`
    (SmolLM2: 7 pairs take about 0.1 s; a 7B about 2 s a pair, so 2 pairs and the context)."""
    started = time.perf_counter()
    decode(1)
    decode(1 + rows)
    single, batch, repeats = math.inf, math.inf, 0
    while repeats < MAX_REPEATS and (repeats < MIN_REPEATS or time.perf_counter() - started < BUDGET_SECONDS):
        single = min(single, decode(1))
        batch = min(batch, decode(1 + rows))
        repeats += 1
    return Measurement(single, batch, rows, repeats, time.perf_counter() - started)


def filler_text(tokens: int) -> str:
    """Text of at least ``tokens`` tokens to time decodes on (any text does: the cost of a row
    does not depend on which token it holds)."""
    return " ".join(f"Item {i} of the list is on page {i * 7}." for i in range(tokens))


def measure_after(sequence: KVSequence, filler: Sequence[int], rows: int) -> Measurement | None:
    """Time decodes of 1 and ``1 + rows`` tokens on one thread after :data:`CONTEXT_TOKENS` of
    ``filler`` decoded after the tokens ``sequence`` holds, then leave its KV cache and its
    context's thread counts as they were; ``None`` when the context is too full (or ``filler``
    too short)."""
    keep = len(sequence)
    need = CONTEXT_TOKENS + 1 + rows
    if keep + need >= sequence.context.n_ctx or len(filler) < need:
        return None
    context, probe = filler[:CONTEXT_TOKENS], filler[CONTEXT_TOKENS:need]
    threads = sequence.context.threads
    sequence.context.set_threads(1, 1)  # on this thread, timed by its CPU clock
    try:
        sequence.decode(context)

        def decode(n: int) -> float:
            started = time.thread_time()
            sequence.decode_all(probe[:n])
            elapsed = time.thread_time() - started
            sequence.drop_after(keep + len(context))
            return elapsed

        return measure(decode, rows)
    finally:
        sequence.context.set_threads(*threads)
        sequence.drop_after(keep)


def cache_key(model: Path, options: LoadOptions, rows: int) -> list[object]:
    """What a measured row cost holds for (see the module docstring)."""
    return [FORMAT, *model_identity(model), rows, options.kv_type,
            bool(options.repack), llama_version(), os.cpu_count(), platform.machine()]


def cache_file(key: list[object]) -> Path:
    return env.cache_dir() / "lookup" / (key_digest(key) + ".json")


def read(path: Path, key: list[object]) -> float | None:
    """The row cost saved in ``path`` for ``key``; ``None`` if missing, corrupt or another key's."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        logger.debug("ignoring row cost cache %s: %s", path, error)
        return None
    if not isinstance(data, dict) or data.get("key") != json.loads(json.dumps(key)):
        logger.debug("ignoring row cost cache %s: measured for another model, machine or setting", path)
        return None
    value = data.get("row_cost")
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not LOWEST <= value <= HIGHEST:
        logger.debug("ignoring row cost cache %s: row_cost %r is not a measured figure", path, value)
        return None
    return float(value)


def write(path: Path, key: list[object], measured: Measurement) -> None:
    """Save ``measured`` for ``key`` (atomically; a failure is only logged)."""
    data = {"key": key, "row_cost": measured.row_cost, "measured": asdict(measured)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, json.dumps(data, indent=1).encode("utf-8"))
    except OSError as error:
        logger.debug("could not save the row cost cache %s: %s", path, error)
