"""``--repack auto``: whether a model is loaded with the hybrid (generation on repacked weights).

The hybrid (:mod:`runtime.llm.llama_engine`) makes generation faster on models whose every token
reads gigabytes of weights, and costs a second copy of the weights and a second context. rt
chooses it when all of these hold:

* the weights are at least :data:`AUTO_MIN_WEIGHTS`: a small model answers in seconds anyway,
  and its first load would pay for a probe process and a second load;
* the memory preflight, counting the mapped file, the repacked copy and both contexts, fits
  with :data:`HEADROOM` of the available memory to spare (on Windows: the anonymous parts
  within the commit headroom, the weights within physical memory); ``RT_MEMORY_LIMIT`` counts;
* a throwaway model process has loaded the repacked weights and decoded with them without
  crashing (repacked AMX kernels crash on some CPUs; on the machine rt is developed on they
  crash on batches of tokens and work one token at a time, which is all the hybrid asks of
  them). The probe's outcome is kept per model file, llama.cpp version and CPU in
  ``RT_HOME/cache/repack``, as the lookup row cost is: a crash is remembered, not repeated.

``--repack`` forces the hybrid (still probed: a crash falls back with a warning), ``--no-repack``
forbids it. Reading the decision never imports llama.cpp, so ``rt info`` can show it.
"""

from __future__ import annotations

import json
import logging
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from runtime import env
from runtime.config import LoadOptions
from runtime.fsutil import atomic_write_bytes, human_bytes
from runtime.llm.prefix_cache import key_digest, llama_version, model_identity
from runtime.models.gguf_file import GGUFInfo
from runtime.models.memory import estimate_memory

logger = logging.getLogger(__name__)

FORMAT = 1
AUTO_MIN_WEIGHTS = 1 << 30  # 1 GiB of tensor data
HEADROOM = 0.10  # of the available memory, left free after the hybrid's load


@dataclass(frozen=True)
class RepackDecision:
    """What was asked (``"auto"``, ``"on"``, ``"off"``), what was chosen, and why, in words."""

    asked: str
    repack: bool
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"asked": self.asked, "repack": self.repack, "reason": self.reason}


def asked(options: LoadOptions) -> str:
    return "auto" if options.repack is None else ("on" if options.repack else "off")


def cpu_name() -> str:
    """The CPU's model name (what decides which repacked kernels run), as precisely as known."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def probe_key(model: Path) -> list[object]:
    return [FORMAT, *model_identity(model), llama_version(), cpu_name(), os.cpu_count(), platform.machine()]


def probe_file(key: list[object]) -> Path:
    return env.cache_dir() / "repack" / (key_digest(key) + ".json")


def read_probe(model: Path) -> tuple[bool, str] | None:
    """The cached probe outcome for ``model`` on this machine: (worked, what happened); ``None``
    when it was never tried (or the file is corrupt or another key's)."""
    key = probe_key(model)
    path = probe_file(key)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        logger.debug("ignoring repack probe cache %s: %s", path, error)
        return None
    if (not isinstance(data, dict) or data.get("key") != json.loads(json.dumps(key))
            or not isinstance(data.get("works"), bool) or not isinstance(data.get("detail"), str)):
        logger.debug("ignoring repack probe cache %s: another model, machine or format", path)
        return None
    return data["works"], data["detail"]


def write_probe(model: Path, works: bool, detail: str) -> None:
    key = probe_key(model)
    path = probe_file(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, json.dumps({"key": key, "works": works, "detail": detail}).encode("utf-8"))
    except OSError as error:
        logger.debug("could not save the repack probe cache %s: %s", path, error)


def memory_refusal(info: GGUFInfo, options: LoadOptions) -> str | None:
    """Why the hybrid does not fit this machine with headroom; ``None`` when it does."""
    est = estimate_memory(info, replace(options, repack=True))
    extra = est.repack + est.second_context
    if est.physical is None:
        budget = int(est.available * (1 - HEADROOM))
        if est.total <= budget:
            return None
        return (f"the hybrid needs {human_bytes(est.total)} (+{human_bytes(extra)} for the repacked copy and its "
                f"context), more than {human_bytes(budget)} ({100 - HEADROOM * 100:.0f}% of "
                f"{human_bytes(est.available)} available, {est.source})")
    budget = int(est.available * (1 - HEADROOM))
    if est.anonymous <= budget and est.weights <= est.physical:
        return None
    return (f"the hybrid needs {human_bytes(est.anonymous)} of committed memory (+{human_bytes(extra)} for the "
            f"repacked copy and its context), more than {human_bytes(budget)} ({100 - HEADROOM * 100:.0f}% of "
            f"the {human_bytes(est.available)} {est.source})")


def preview(info: GGUFInfo, options: LoadOptions, *, min_weights: int = AUTO_MIN_WEIGHTS) -> RepackDecision:
    """What :func:`choose` would decide, without running a probe (``rt info``)."""
    decided = _before_probe(info, options, min_weights)
    if decided is not None:
        return decided
    cached = read_probe(info.path)
    if cached is None:
        return RepackDecision(asked(options), True, "it fits; the first load tries the repacked weights in a "
                                                    "throwaway process and falls back if they crash")
    works, detail = cached
    return RepackDecision(asked(options), works, detail)


def _before_probe(info: GGUFInfo, options: LoadOptions, min_weights: int) -> RepackDecision | None:
    if options.repack is False:
        return RepackDecision("off", False, "--no-repack")
    if options.repack is None:
        if info.tensor_data_bytes < min_weights:
            return RepackDecision("auto", False, f"its weights ({human_bytes(info.tensor_data_bytes)}) are under "
                                                 f"{human_bytes(min_weights)}: too small to gain")
        refusal = memory_refusal(info, options)
        if refusal is not None:
            return RepackDecision("auto", False, refusal)
    return None


def choose(info: GGUFInfo, options: LoadOptions, *, min_weights: int = AUTO_MIN_WEIGHTS,
           probe: Callable[[Path, LoadOptions], Any] | None = None) -> tuple[LoadOptions, RepackDecision]:
    """``options`` with ``repack`` decided (``True``/``False``) for ``info``'s file, and why.

    ``probe`` (tests) replaces :func:`runtime.llm.worker.probe_repack`: it returns ``None``
    when the repacked weights worked, else the :class:`~runtime.errors.ModelCrashedError`.
    """
    decided = _before_probe(info, options, min_weights)
    if decided is not None:
        return replace(options, repack=False), decided
    cached = read_probe(info.path)
    if cached is None:
        if probe is None:
            from runtime.llm.worker import probe_repack

            probe = probe_repack
        failure = probe(info.path, options)
        if failure is None:
            cached = True, "a test load of the repacked weights worked on this CPU"
        else:
            cached = False, f"a test load of the repacked weights crashed: {failure.message}"
            if "did not finish" in failure.message:  # slow, not broken: try again next time
                logger.warning("--repack test load: %s; loading without repacking instead", failure.message)
                return replace(options, repack=False), RepackDecision(asked(options), False, cached[1])
        write_probe(info.path, *cached)
    works, detail = cached
    if not works and options.repack:
        logger.warning("--repack crashed a test load (%s); loading without repacking instead",
                       detail.removeprefix("a test load of the repacked weights crashed: "))
    elif works:
        logger.info("repack: %s; generating on repacked weights", detail)
    return replace(options, repack=works), RepackDecision(asked(options), works, detail)
