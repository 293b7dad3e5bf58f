"""What ``--repack`` trades, in numbers a user can act on (shown by ``rt info``).

Two kinds of figure, kept apart: the memory is computed for the model at hand (the preflight
counts a second copy of its weights, :func:`runtime.models.memory.estimate_memory`), while the
speed ratios were measured once, on one model and machine (benchmarks/bench_repack.py, recorded
in docs/memory.md), and are shown as such. llama.cpp repacks only some tensor types for the CPU
(Q4_0, Q4_K, IQ4_NL and, in recent builds, Q8_0 and Q2_K, depending on the CPU's instructions),
so another quantization may gain less, or nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.fsutil import human_bytes


@dataclass(frozen=True)
class RepackMeasurement:
    """One measured run of benchmarks/bench_repack.py: repacked / plain speeds and the
    anonymous memory repacking added (``RssAnon``), for a model file of ``file_size`` bytes."""

    model: str
    quantization: str
    threads: int
    generation: float   # repacked / plain generation tokens/s
    prompt: float       # repacked / plain prompt tokens/s
    anon_added: int     # bytes of RssAnon added by repacking
    file_size: int
    source: str = "docs/memory.md"


# benchmarks/bench_repack.py on the Mistral-7B-shaped Q4_K_M (make_7b_gguf.py), 2 threads, a
# shared 2-core x86-64 VM (load average ~14), medians of 2 alternating pairs; the generation
# ratio's pairs were 1.12x and 2.86x (docs/memory.md)
MEASURED = RepackMeasurement(model="Mistral-7B-shaped", quantization="Q4_K_M", threads=2,
                             generation=1.71, prompt=0.70, anon_added=3_360_000_000, file_size=4_368_850_784)


@dataclass(frozen=True)
class RepackTradeoff:
    """``extra_memory`` (bytes) is what the preflight adds for this model with ``--repack`` (a
    second copy of its weights, an upper bound); ``measured`` the speeds seen elsewhere."""

    extra_memory: int
    quantization: str
    measured: RepackMeasurement = MEASURED

    def describe(self) -> str:
        """One line for ``rt info``."""
        m = self.measured
        share = m.anon_added / m.file_size if m.file_size else 0.0
        same = self.quantization == m.quantization
        speed = (f"measured on a {m.model} {m.quantization}, {m.threads} threads: generation "
                 f"{m.generation:.2f}x, prompt processing {m.prompt:.2f}x, RssAnon +{share:.0%} of the "
                 f"file ({m.source})")
        if not same:
            speed += f"; {self.quantization} may repack less or not at all"
        return f"+{human_bytes(self.extra_memory)} memory at most (a second copy of the weights); {speed}"

    def to_dict(self) -> dict[str, object]:
        m = self.measured
        return {"extra_memory": self.extra_memory,
                "measured": {"model": m.model, "quantization": m.quantization, "threads": m.threads,
                             "generation_ratio": m.generation, "prompt_ratio": m.prompt,
                             "anon_added": m.anon_added, "file_size": m.file_size, "source": m.source}}


def repack_tradeoff(weights: int, quantization: str) -> RepackTradeoff:
    """The trade-off for a model whose tensor data is ``weights`` bytes, of ``quantization``."""
    return RepackTradeoff(extra_memory=weights, quantization=quantization)
