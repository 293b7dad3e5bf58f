"""Memory preflight: will this model fit, before llama.cpp tries?

llama.cpp allocates its KV cache and compute buffers up front and maps the weights; when the
machine cannot give that memory the process is killed (Linux OOM killer) or a native
allocation fails (Windows commit limit) with no message. :func:`preflight` estimates what a load
needs and refuses, with the numbers and what to change, when it does not fit.

What a load needs (measured against llama.cpp's own log, ``RT_DEBUG=1``, see the tests):

* **weights**: the tensor data region of the GGUF. It is memory-mapped, so the pages are
  file-backed, not anonymous: they need no swap or commit, but every token touches all of them,
  and if they do not fit in RAM they are evicted and re-read from disk on every token
  (thrashing, generation slower by orders of magnitude). So they count in full.
* **KV cache**: ``n_layer * n_ctx * n_head_kv * (head_dim_k + head_dim_v)`` elements of the KV
  type (f16: 2 bytes, q8_0: 34 bytes per block of 32), per layer's own KV head count. Sliding
  window layers (Gemma 2/3, Cohere 2, ...) get a full-size cache too, because llama.cpp's
  default ``swa_full=true`` allocates it; recurrent layers (head_count_kv 0) get none.
  SmolLM2 at --ctx 4096: 90.00 MiB computed and logged.
* **compute**: rt's engine asks for logits of the last token, or of each row of a prompt-lookup
  draft's verification (``n_outputs_max = 1 + max_draft``, capped to ``n_ubatch``), and
  flash attention is on (llama.cpp's "auto" picks it on the CPU; rt forces it for a q8_0 cache),
  so the graph reserved for a full micro-batch (``n_ubatch``, = n_batch capped to n_ctx) peaks
  in the layer activations and the f16 KQ masks, not in the logits. Upper bound, in bytes::

      n_ubatch * 4 * (3 * max(n_ff, n_head * head_dim) + 5 * n_embd)   # activations
      + masks * n_ctx_pad * n_ubatch * 2     # masks: 2 with a sliding window (Gemma), else 1
      + (2 + max_draft) * n_vocab * 4        # logits: 1 row in the graph, 1 + max_draft output rows

  (n_ctx_pad: n_ctx rounded up to 256, as llama.cpp pads it). llama.cpp logs one output row at
  load whatever ``n_outputs_max`` is, and grows the output buffer when a draft is verified: on
  Gemma a first 9-row verification raises RssAnon by 14.4 MiB and a 17-row one by 23.5 MiB, a
  single-row decode by nothing (8 and 16 more output rows, plus compute pages touched first).
  Logged compute + output buffer vs estimate with ``max_draft = 0``, MiB, f16 / q8_0 KV at ctx
  512, 2048, 4096, 8192 (llama.cpp 0.3.36 build; the default ``max_draft`` 8 adds 8 rows):

  - SmolLM2 135M, n_batch 512: 14.20/13.11, 15.70/14.61, 17.70/16.61, 21.70/20.61; estimate
    15.50, 17.00, 19.00, 23.00. n_batch 128: 3.69/3.44 ... 5.57/5.32; estimate 4.16 ... 6.03.
  - Gemma 3 270M, n_batch 512: 19.77/20.30, 22.77/23.30, 26.77/27.30, 34.77/35.30; estimate
    21.25, 24.25, 28.25, 36.25. n_batch 128: 5.69/6.22 ... 9.44/9.97; estimate 6.81 ... 10.56.

  Over these and a few odd shapes (ctx 1000 / batch 64, ctx 300 / batch 512, batch 1024) the
  estimate is 2% to 31% above the log, never below. Per micro-batch token the measured
  activations are SmolLM2 27.0 KiB (exactly 3 * n_ff + 4 * n_embd floats), Gemma 35.5 KiB;
  the fifth n_embd covers Gemma's extra norms. Without ``n_outputs_max`` the logits of
  every position (``n_ubatch * n_vocab * 4``: Gemma 512 MiB at n_batch 512) would dominate.
* **repack**: with ``--repack`` (the hybrid) the file is loaded twice: mapped, for the prompt,
  and with llama.cpp's extra buffer types, which copy the weights they repack into anonymous
  memory while the mapping stays; counted as a full second copy (an upper bound: 7B Q4_K_M
  measured +3.2 GB for a 4.1 GB file). The repacked copy has its own context, so a second KV
  cache and compute buffer (``second_context``) count too, and so does the prompt's KV state
  while it is handed over (one copy in the process, at most about a KV cache). On the 7B shape
  the model process's RssAnon peaked at 6,027 MiB at the hand-over while the state was copied
  three times over (and once into a Python list: 8 bytes an entry); one copy now.

What the machine has (:func:`available_memory`): on Linux, ``MemAvailable`` (free RAM plus
reclaimable page cache) plus free swap, capped by the cgroup limit of a container. On Windows
two figures from ``GlobalMemoryStatusEx``, because the parts are charged differently: the KV
cache, the compute buffers and a repacked copy are anonymous memory, charged to the commit limit,
so they are checked against the commit headroom (commit limit minus commit charge: RAM plus page
file not yet promised); the weights are file-backed pages, never charged to the commit limit but
thrashing unless they fit in RAM, so they are checked against the available physical memory.
``RT_MEMORY_LIMIT`` caps the single figure (and lets tests inject one).

When the machine refuses anyway (another program took the memory after the check, ``--force``),
Windows says so in its own words ("The paging file is too small for this operation to complete",
WinError 1455; llama.cpp's "insufficient memory"): :func:`memory_error_from` turns such a text into
:class:`InsufficientMemoryError` with the estimate's numbers and what to do.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime import env
from runtime.config import LoadOptions, kv_cache_type, output_rows
from runtime.errors import InsufficientMemoryError
from runtime.fsutil import human_bytes
from runtime.models.gguf_file import GGUFInfo

log = logging.getLogger(__name__)

_COMMIT_SOURCE = "commit headroom: RAM + page file"
_PAGE_FILE_TIP = "enlarge the page file (Settings > System > About > Advanced system settings > Performance)"

@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a load needs, by part, and what the machine has (all in bytes)."""

    weights: int
    kv_cache: int
    compute: int
    repack: int
    total: int
    available: int
    source: str = ""  # where ``available`` comes from: "RAM + swap", "RT_MEMORY_LIMIT", ...
    # Windows: available physical memory, for the file-backed weights; ``available`` (the commit
    # headroom) is then for the rest. None elsewhere: everything counts against ``available``.
    physical: int | None = None
    second_context: int = 0  # the hybrid's context on the repacked copy (KV cache + compute) and the hand-over

    @property
    def anonymous(self) -> int:
        """Bytes that are not file-backed: KV caches, compute buffers, a repacked copy."""
        return self.total - self.weights

    @property
    def fits(self) -> bool:
        if self.physical is None:
            return self.total <= self.available
        return self.anonymous <= self.available and self.weights <= self.physical


def effective_ctx(info: GGUFInfo, options: LoadOptions) -> int:
    """The context size a load will use: ``options.n_ctx``, capped to the trained context (0: that).

    The same rule as :class:`runtime.llm.model.Model` applies before loading.
    """
    trained = info.context_length
    if trained > 0 and (options.n_ctx <= 0 or options.n_ctx > trained):
        return trained
    return options.n_ctx


def kv_bytes_per_token(info: GGUFInfo, kv_type: str) -> int:
    """KV cache bytes one token of context costs, summed over layers."""
    kv = kv_cache_type(kv_type)
    block, block_bytes = kv.block, kv.block_bytes

    def row_bytes(n_values: int) -> int:  # one layer's K (or V) row per token, in whole blocks
        return -(-n_values // block) * block_bytes

    return sum(row_bytes(heads * info.head_dim_k) + row_bytes(heads * info.head_dim_v)
               for heads in info.kv_heads_per_layer())


def _feed_forward_length(info: GGUFInfo) -> int:
    """The widest feed-forward layer (some architectures list one length per layer), 0 if unknown."""
    n_ff = info.arch_value("feed_forward_length", 0)
    if isinstance(n_ff, tuple):
        n_ff = max((v for v in n_ff if isinstance(v, (int, float))), default=0)
    return int(n_ff) if isinstance(n_ff, (int, float)) else 0


def padded_ctx(n_ctx: int) -> int:
    """llama.cpp pads the KV cache to a multiple of 256 cells (``--ctx 1000`` allocates 1024)."""
    return -(-n_ctx // 256) * 256


def compute_bytes(info: GGUFInfo, options: LoadOptions) -> int:
    """llama.cpp's CPU compute buffer plus output buffer (formula and measurements above)."""
    n_ctx = effective_ctx(info, options)
    n_ubatch = max(1, min(options.n_batch, n_ctx))  # as runtime.llm.llama_engine sets it
    n_ctx = padded_ctx(n_ctx)
    widest = max(_feed_forward_length(info), info.n_head * info.head_dim_k)
    activations = n_ubatch * 4 * (3 * widest + 5 * info.n_embd)
    n_masks = 2 if info.arch_value("attention.sliding_window") else 1
    masks = n_masks * n_ctx * n_ubatch * 2  # f16 KQ masks for flash attention
    # logits: one row in the graph (reserving more rows does not grow the logged buffer), and
    # output_rows in the output buffer, which grows to them at the first draft verification
    return activations + masks + (1 + output_rows(options.max_draft, n_ubatch)) * info.n_vocab * 4


def estimate_memory(info: GGUFInfo, options: LoadOptions) -> MemoryEstimate:
    """Estimate the memory loading ``info`` with ``options`` needs, and what is available."""
    weights = info.tensor_data_bytes
    kv_cache = padded_ctx(effective_ctx(info, options)) * kv_bytes_per_token(info, options.kv_type)
    compute = compute_bytes(info, options)
    repack = weights if options.repack else 0
    # the repacked copy's context, and the prompt's KV state in flight at the hand-over (one
    # copy, runtime.llm.native.NativeContext.get_state; a full context's is about a KV cache)
    second_context = 2 * kv_cache + compute if options.repack else 0
    total = weights + kv_cache + compute + repack + second_context
    available, source = available_memory_with_source()
    physical = None
    if sys.platform == "win32" and source == _COMMIT_SOURCE:
        physical = _windows_memory_status()[1]
    return MemoryEstimate(weights, kv_cache, compute, repack, total, available, source, physical, second_context)


def _cgroup_headroom() -> int | None:
    """Bytes a Linux container may still use (cgroup v2 or v1), or None without a limit."""
    v2, v1 = Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/memory")
    for limit_file, usage_file, stat_key in (
        (v2 / "memory.max", v2 / "memory.current", "inactive_file"),
        (v1 / "memory.limit_in_bytes", v1 / "memory.usage_in_bytes", "total_inactive_file"),
    ):
        try:
            limit_text = limit_file.read_text().strip()
            if limit_text == "max" or int(limit_text) >= 1 << 60:
                return None
            usage = int(usage_file.read_text())
            stat = dict(line.split() for line in (limit_file.parent / "memory.stat").read_text().splitlines())
            reclaimable = int(stat.get(stat_key, 0))
            return max(0, int(limit_text) - usage + reclaimable)
        except (OSError, ValueError):
            continue
    return None


def _kernel32() -> Any:
    return getattr(ctypes, "windll").kernel32


class _MemoryStatusEx(ctypes.Structure):
    _fields_ = [("dwLength", ctypes.c_uint32), ("dwMemoryLoad", ctypes.c_uint32)] + [  # DWORDs
        (name, ctypes.c_ulonglong) for name in (
            "ullTotalPhys", "ullAvailPhys", "ullTotalPageFile", "ullAvailPageFile",
            "ullTotalVirtual", "ullAvailVirtual", "ullAvailExtendedVirtual")
    ]


def _windows_memory_status() -> tuple[int, int]:
    """(commit headroom, available physical memory) in bytes, from ``GlobalMemoryStatusEx``."""
    status = _MemoryStatusEx()
    status.dwLength = ctypes.sizeof(_MemoryStatusEx)
    if not _kernel32().GlobalMemoryStatusEx(ctypes.byref(status)):
        raise OSError("GlobalMemoryStatusEx failed")
    # ullAvailPageFile, despite the name: commit limit minus commit charge
    return int(status.ullAvailPageFile), int(status.ullAvailPhys)


def system_available_memory() -> tuple[int, str]:
    """What the machine can give now, ignoring ``RT_MEMORY_LIMIT``, and where the figure comes from."""
    if sys.platform == "win32":
        try:
            return _windows_memory_status()[0], _COMMIT_SOURCE
        except (OSError, AttributeError) as exc:
            log.debug("commit headroom unavailable (%s); using RAM + page file", exc)
    import psutil

    available = int(psutil.virtual_memory().available + psutil.swap_memory().free)
    if sys.platform.startswith("linux"):
        headroom = _cgroup_headroom()
        if headroom is not None and headroom < available:
            return headroom, "container limit"
    return available, "RAM + swap"


def available_memory_with_source() -> tuple[int, str]:
    """:func:`available_memory` and a few words on where it comes from (for messages)."""
    limit = env.memory_limit()
    system, source = system_available_memory()
    if limit is not None and limit < system:
        return limit, "RT_MEMORY_LIMIT"
    return system, source


def available_memory() -> int:
    """Bytes a load may use: what the machine has (see the module docstring), capped by ``RT_MEMORY_LIMIT``."""
    return available_memory_with_source()[0]


def suggestions(info: GGUFInfo, options: LoadOptions, est: MemoryEstimate) -> list[str]:
    """What to change, most useful first; only changes that help with these numbers."""
    tips = []
    if options.repack:
        tips.append("without --repack (it keeps a second copy of the weights)")
    # after dropping --repack; on Windows the weights are not charged to the commit headroom
    room = est.available - est.compute - (est.weights if est.physical is None else 0)
    per_token = kv_bytes_per_token(info, options.kv_type)
    if room > 0 and per_token > 0:  # 0: no attention layer has a KV cache (or a file declares none)
        fitting = min(effective_ctx(info, options) // 2, room // per_token // 256 * 256)
        if fitting >= 256:
            tips.append(f"--ctx {fitting}")
        if options.kv_type == "f16" and est.kv_cache > est.total // 20:
            tips.append("--kv-type q8_0")
    small = info.quantization.upper().startswith(("Q2", "Q3", "Q4", "IQ", "TQ"))
    tips.append("a smaller model" if small else "a smaller quantization such as Q4_K_M")
    return tips


def preflight(info: GGUFInfo, options: LoadOptions) -> MemoryEstimate:
    """Estimate the load and raise :class:`InsufficientMemoryError` if it does not fit.

    ``options.force`` turns the refusal into a logged warning. Returns the estimate.
    """
    est = estimate_memory(info, options)
    if est.fits:
        return est
    parts = [f"weights {human_bytes(est.weights)}",
             f"{options.kv_type} KV cache {human_bytes(est.kv_cache)} for --ctx {effective_ctx(info, options)}",
             f"compute {human_bytes(est.compute)}"]
    if est.repack:
        parts.append(f"repacked copy {human_bytes(est.repack)} and its context {human_bytes(est.second_context)}")
    if est.physical is None:
        message = (f"{info.path.name} needs {human_bytes(est.total)} ({', '.join(parts)}), "
                   f"{human_bytes(est.available)} available ({est.source})")
    elif est.anonymous > est.available:
        message = (f"{info.path.name} needs {human_bytes(est.anonymous)} of committed memory "
                   f"({', '.join(parts[1:])}), {human_bytes(est.available)} available ({est.source})")
    else:  # the file-backed weights do not fit in RAM: every token would re-read them from disk
        message = (f"{info.path.name}'s weights need {human_bytes(est.weights)} of RAM, "
                   f"{human_bytes(est.physical)} available (physical memory)")
    if options.force:
        log.warning("%s; loading anyway (--force)", message)
        return est
    tips = suggestions(info, options, est)
    if est.physical is not None and est.anonymous > est.available:
        tips.insert(0, _PAGE_FILE_TIP)
    elif est.physical is not None:  # only fewer bytes of weights, or more free RAM, help
        tips = [tips[-1], "closing other programs"]
    hint = "try " + ", ".join(tips[:-1]) + (", or " if len(tips) > 1 else "") + tips[-1] + "; --force skips this check"
    raise InsufficientMemoryError(message, needed=est.total, available=est.available, hint=hint)


# how Windows (and llama.cpp on it) says that memory ran out
_REFUSALS = ("paging file is too small", "winerror 1455", "error 1455", "insufficient memory",
             "not enough memory", "not enough storage is available", "failed to allocate")


def memory_error_from(text: str, est: MemoryEstimate | None) -> InsufficientMemoryError | None:
    """:class:`InsufficientMemoryError` with ``est``'s numbers if ``text`` (an error from the model
    process, a log line) says the system refused memory; ``None`` if it says something else."""
    from runtime.limits import looks_like_memory_failure

    lowered = text.lower()
    if not (any(words in lowered for words in _REFUSALS) or looks_like_memory_failure(text)):
        return None
    message = f"the system refused memory while loading the model ({text.strip()[:200]})"
    tips = ["a smaller --ctx", "--kv-type q8_0", "a smaller quantization", "closing other programs"]
    if sys.platform == "win32" or "paging file" in lowered or "1455" in lowered:
        tips.insert(0, _PAGE_FILE_TIP)
    if est is None:
        return InsufficientMemoryError(message, hint="try " + ", ".join(tips))
    message += (f"; it needs about {human_bytes(est.total)} (weights {human_bytes(est.weights)}, "
                f"KV cache {human_bytes(est.kv_cache)}, compute {human_bytes(est.compute)}), "
                f"{human_bytes(est.available)} available ({est.source})")
    if est.physical is not None:
        message += f" and {human_bytes(est.physical)} of RAM"
    return InsufficientMemoryError(message, needed=est.total, available=est.available, hint="try " + ", ".join(tips))
