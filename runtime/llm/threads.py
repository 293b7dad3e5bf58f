"""Generation threads for a machine that is rarely idle.

Generation decodes one token at a time and waits for its slowest thread: with one of two cores
busy in another process, SmolLM2 made 37 tokens/s on 2 threads against 78 on 1 (103 and 82
idle, issue 10). So generation uses the cores this process may use minus those already busy
when the model loads (sampled for 0.1 s), at least one; prompt processing keeps all of them.
``--threads`` overrides both.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

BUSY_PERCENT = 60.0  # a core this busy in the sample counts as taken
SAMPLE_SECONDS = 0.1


def generation_threads(cores: int, busy_percents: list[float]) -> int:
    """Threads for generation: ``cores`` minus the cores at least :data:`BUSY_PERCENT` busy, at least 1."""
    busy = sum(1 for percent in busy_percents if percent >= BUSY_PERCENT)
    return max(1, min(cores, len(busy_percents) - busy if busy_percents else cores))


def sample_generation_threads(cores: int) -> int:
    """:func:`generation_threads` on a 0.1 s sample of per-core use (all ``cores`` if it fails)."""
    try:
        import psutil

        percents = psutil.cpu_percent(interval=SAMPLE_SECONDS, percpu=True)
    except Exception as error:  # noqa: BLE001 - a failed sample only means no adjustment
        logger.debug("could not sample CPU use: %s", error)
        return cores
    chosen = generation_threads(cores, list(percents))
    logger.debug("generation threads: %d of %d (per-core use %s)", chosen, cores, percents)
    return chosen
