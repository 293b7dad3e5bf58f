"""The hybrid's second load, the repacked copy of the weights, made in a thread.

Repacking a 7B's weights takes several seconds of one core (about 9 s of the 28 s to a first
token on two cores here, docs/speed.md). Nothing needs the copy before the prompt's last token:
the prompt is decoded on the mapped weights and its KV cache handed over after. So the engine
starts this load when it opens and waits for it only then; retrieval, prompt building and
prompt processing run meanwhile (llama.cpp's calls release the GIL). Where the copy is waited
for does not depend on timing, so greedy answers stay the same run to run.

A load that fails (memory, a refused file) is not fatal: the engine generates on the mapped
weights, and :attr:`RepackedLoad.failure` says why.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from runtime.llm.native import ContextParams, NativeContext, NativeModel

logger = logging.getLogger(__name__)


class RepackedLoad:
    """Loads ``path`` with llama.cpp's extra buffer types and a context on it, in a thread."""

    def __init__(self, path: Path, params: ContextParams) -> None:
        self.model: NativeModel | None = None
        self.context: NativeContext | None = None
        self.failure: str | None = None
        self.seconds = 0.0
        self._thread = threading.Thread(target=self._load, args=(path, params),
                                        name="rt-repacked-load", daemon=True)
        self._thread.start()

    def _load(self, path: Path, params: ContextParams) -> None:
        started = time.perf_counter()
        try:
            self.model = NativeModel(path, extra_bufts=True)
            self.context = NativeContext(self.model, params)
        except Exception as exc:  # noqa: BLE001 -- any refusal falls back to the mapped weights
            self.failure = str(exc) or type(exc).__name__
        self.seconds = time.perf_counter() - started

    def wait(self) -> NativeContext | None:
        """The repacked context once loaded; ``None`` (and :attr:`failure` set) if it failed."""
        waited = time.perf_counter()
        self._thread.join()
        logger.debug("repacked copy loaded in %.2f s (%.2f s of it waited for)", self.seconds,
                     time.perf_counter() - waited)
        if self.context is None:
            logger.warning("the repacked copy of the weights could not be loaded (%s); generating on the "
                           "mapped weights", self.failure)
        return self.context

    def close(self) -> None:
        """Wait for the thread, then free what it loaded (the engine frees what it took over)."""
        self._thread.join()
        if self.context is not None:
            self.context.close()
        if self.model is not None:
            self.model.close()
